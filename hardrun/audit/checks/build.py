"""Checks over the build model (hardrun.spec.build.Dockerfile).

Each check is registered for one rule (rules/HR1xxx.yaml holds its documentation)
and yields `Hit(line, message, severity)`. Checks read only the model and the
AuditContext; everything here is plain string work (no per-file regex compilation)
so that auditing stays well above a thousand files per second.
"""
from __future__ import annotations

from ...spec.secret_files import secret_file_kind
from ...spec.users import is_root_user
from ..findings import Hit
from ..images import judge_image, UNPINNED_DIGEST, UNTRUSTED_BASE
from . import check
from ..secrets import (find_credential_literals, is_secret_name, is_secret_value,
                       pipeline_credentials)
from .buildutil import buildcontext, commands, downloads, packages, stages, tls, users


# --- root-user -----------------------------------------------------------------------

@check("HR1001")
def final_stage_runs_as_root(dockerfile, context):
    final = dockerfile.final_stage
    if final is None:
        return
    user, instruction = users.effective_user(dockerfile, final)
    if instruction is None:
        if users.base_runs_as_non_root(dockerfile, final):
            return
        yield Hit(final.line, "final stage sets no USER, so it runs as root: add "
                              "`USER <non-root uid>` after the steps that need root")
    elif user is not None and is_root_user(user):
        yield Hit(instruction.line, f"final stage runs as root (USER {user}): switch to a "
                                    "non-root uid")


# --- copy-all ------------------------------------------------------------------------

@check("HR1002")
def copies_whole_context(dockerfile, context):
    protective = buildcontext.dockerignore_protects(context.dockerignore)
    for instruction in stages.instructions(dockerfile):
        if instruction.keyword not in ("COPY", "ADD") or instruction.flag("from") is not None:
            continue
        whole = [source for source in buildcontext.copy_sources(instruction)
                 if source in buildcontext.WHOLE_CONTEXT]
        if not whole:
            continue
        what = f"{instruction.keyword} {whole[0]}"
        if protective:
            yield Hit(instruction.line, f"{what} copies the whole build context (the "
                                        ".dockerignore keeps .git and secret files out: copy "
                                        "only what the image needs)", severity="info")
        elif context.dockerignore is None and context.path == "<stdin>":
            yield Hit(instruction.line, f"{what} copies the whole build context (read from "
                                        "standard input, so no .dockerignore was checked)")
        elif context.dockerignore is None:
            yield Hit(instruction.line, f"{what} copies the whole build context and there is no "
                                        ".dockerignore: .git, .env and keys end up in the image")
        else:
            yield Hit(instruction.line, f"{what} copies the whole build context and the "
                                        ".dockerignore does not exclude "
                                        f"{buildcontext.dockerignore_gaps(context.dockerignore)}")


# --- secret --------------------------------------------------------------------------

@check("HR1003")
def secret_in_env(dockerfile, context):
    for instruction in stages.instructions(dockerfile):
        if instruction.keyword != "ENV":
            continue
        for name, value in instruction.pairs:
            if is_secret_name(name) and is_secret_value(value):
                yield Hit(instruction.line, f"ENV {name} bakes a secret into the image (every "
                                            "container and `docker inspect` shows it)")


@check("HR1004")
def secret_in_arg_default(dockerfile, context):
    for instruction in stages.instructions(dockerfile):
        if instruction.keyword != "ARG":
            continue
        for name, value in instruction.pairs:
            if is_secret_name(name) and is_secret_value(value):
                yield Hit(instruction.line, f"ARG {name} has a literal secret as its default "
                                            "(it is in the Dockerfile and the image history)")


@check("HR1019")
def secret_as_build_arg(dockerfile, context):
    for instruction in stages.instructions(dockerfile):
        if instruction.keyword != "ARG":
            continue
        for name, value in instruction.pairs:
            if is_secret_name(name) and not is_secret_value(value):
                yield Hit(instruction.line, f"ARG {name} passes a secret as a build argument; its "
                                            "value is recorded in the image history: use "
                                            "RUN --mount=type=secret")


@check("HR1005")
def credential_literal(dockerfile, context):
    seen = set()
    for line, description in _credential_literals(dockerfile):
        if line not in seen:   # one finding per line, however many credentials it holds
            seen.add(line)
            yield Hit(line, f"{description}: credentials in a Dockerfile end up in the image "
                            "or its history")


def _credential_literals(dockerfile):
    for instruction in stages.instructions(dockerfile):
        keyword = instruction.keyword
        if keyword == "RUN":
            for pipeline in instruction.pipelines:
                for credential in pipeline_credentials(pipeline):
                    yield pipeline[0].line, credential.description
        if keyword in ("ENV", "ARG"):
            pairs = instruction.pairs
            # Secret-named variables are HR1003/HR1004's; judge the values of the others.
            text = " ".join(value or "" for name, value in pairs if not is_secret_name(name))
        else:
            text = instruction.args
        for credential in find_credential_literals(text):
            yield instruction.line, credential.description
        for heredoc in instruction.heredocs:
            for credential in find_credential_literals(heredoc.body):
                yield heredoc.line + credential.line_offset, credential.description


@check("HR1006")
def secret_file_copied(dockerfile, context):
    final_chain = stages.final_chain_indexes(dockerfile)
    for stage in dockerfile.stages:
        for instruction in stage.instructions:
            if instruction.keyword not in ("COPY", "ADD"):
                continue
            for source in buildcontext.copy_sources(instruction):
                kind = secret_file_kind(source)
                if kind is None:
                    continue
                if stage.index in final_chain:
                    yield Hit(instruction.line, f"{instruction.keyword} {source} puts {kind} into "
                                                "the image: use RUN --mount=type=secret")
                else:
                    yield Hit(instruction.line, f"{instruction.keyword} {source} puts {kind} into "
                                                "a build stage (its layers stay in the build cache)"
                                                ": use RUN --mount=type=secret", severity="warning")


# --- untrusted-base, unpinned-digest -------------------------------------------------

@check("HR1007")
def untrusted_base(dockerfile, context):
    trusted = context.options.trusted_registries
    for stage, reference in stages.external_bases(dockerfile):
        for problem in judge_image(reference, trusted):
            if problem.practice != UNTRUSTED_BASE:
                continue
            severity = "error" if problem.reason == "untrusted-registry" else None
            yield Hit(stage.line, problem.message, severity=severity)


@check("HR1008")
def unpinned_digest(dockerfile, context):
    for stage, reference in stages.external_bases(dockerfile):
        for problem in judge_image(reference):
            if problem.practice == UNPINNED_DIGEST:
                yield Hit(stage.line, problem.message)


# --- ADD -----------------------------------------------------------------------------

@check("HR1009")
def add_remote(dockerfile, context):
    for instruction in stages.instructions(dockerfile):
        if instruction.keyword != "ADD":
            continue
        for source in buildcontext.copy_sources(instruction):
            if not buildcontext.is_remote_source(source):
                continue
            if instruction.flag("checksum"):
                yield Hit(instruction.line, f"ADD fetches {source} (verified by --checksum; "
                                            "prefer a pinned download in RUN)", severity="info")
            else:
                yield Hit(instruction.line, f"ADD fetches {source} with no checksum: download "
                                            "it in RUN and verify it, or use ADD --checksum=sha256:…")


@check("HR1011")
def add_local(dockerfile, context):
    for instruction in stages.instructions(dockerfile):
        if instruction.keyword != "ADD":
            continue
        local = [source for source in buildcontext.copy_sources(instruction)
                 if not buildcontext.is_remote_source(source) and not buildcontext.is_archive(source)
                 and "$" not in source]
        if local:
            yield Hit(instruction.line, f"ADD {local[0]} copies a local file or directory: use "
                                        "COPY (ADD also unpacks archives and fetches URLs)")


# --- RUN commands --------------------------------------------------------------------

@check("HR1010")
def curl_pipe_shell(dockerfile, context):
    for instruction in stages.runs(dockerfile):
        lines = set()
        for pipeline in instruction.pipelines:
            found = downloads.pipe_to_shell(pipeline) or downloads.shell_runs_download(pipeline)
            if found and pipeline[0].line not in lines:
                lines.add(pipeline[0].line)
                yield Hit(pipeline[0].line, found)
        if not lines:
            # Forms the shell splitter may keep as one word: `bash <(curl …)`, `$(curl …)`.
            for line, text in commands.run_texts(instruction):
                if ("curl" in text or "wget" in text) and downloads.SUBSTITUTED_DOWNLOAD.search(text):
                    yield Hit(line, "a downloaded script is run by a shell without being "
                                    "verified: download, check its checksum, then run it")
                    break


@check("HR1012")
def sudo_in_run(dockerfile, context):
    for instruction in stages.runs(dockerfile):
        for command in instruction.commands():
            if command.name == "sudo":
                shown = " ".join(command.words[:3])
                yield Hit(command.line, f"`{shown}` in RUN: the build already runs as root "
                                        "before USER; switch USER instead of using sudo")
                break


@check("HR1013")
def tls_disabled_in_run(dockerfile, context):
    for instruction, rows in zip(stages.runs(dockerfile), stages.run_commands(dockerfile)):
        lines = set()
        for command, words, name in rows:
            reason = tls.insecure_command(command, words, name)
            if reason and command.line not in lines:
                lines.add(command.line)
                yield Hit(command.line, f"{reason}, so downloads can be tampered with")
        for line, text in commands.run_texts(instruction):
            reason = tls.insecure_config_text(text)
            if reason and line not in lines:
                lines.add(line)
                yield Hit(line, f"{reason}, so downloads can be tampered with")


@check("HR1014")
def tls_disabled_in_env(dockerfile, context):
    for instruction in stages.instructions(dockerfile):
        if instruction.keyword != "ENV":
            continue
        for name, value in instruction.pairs:
            reason = tls.insecure_variable(name, value)
            if reason:
                yield Hit(instruction.line, f"ENV {name}={value} {reason} for every build step "
                                            "after it and in every container")


# --- EXPOSE --------------------------------------------------------------------------

@check("HR1015")
def expose_sensitive(dockerfile, context):
    for instruction in stages.instructions(dockerfile):
        if instruction.keyword != "EXPOSE":
            continue
        for spec, ports in stages.sensitive_ports(instruction.expanded):
            listed = ", ".join(f"{port} ({service})" for port, service in ports)
            severity = "error" if any(port == 2375 for port, _ in ports) else None
            noun = "ports" if len(ports) > 1 else "port"
            yield Hit(instruction.line, f"EXPOSE {spec} opens {noun} {listed}: remote "
                                        "administration does not belong in an application "
                                        "image", severity=severity)


# --- informational -------------------------------------------------------------------

MANY_RUNS = 3


@check("HR1016")
def many_layers(dockerfile, context):
    for index in stages.final_chain_indexes(dockerfile):
        stage = dockerfile.stages[index]
        streak = []
        for instruction in stage.instructions[1:] + (None,):
            if instruction is not None and instruction.keyword == "RUN":
                streak.append(instruction)
                continue
            if len(streak) >= MANY_RUNS:
                yield Hit(streak[0].line, f"{len(streak)} consecutive RUN instructions (lines "
                                          f"{streak[0].line}-{streak[-1].line}) could be one "
                                          "joined with &&: fewer layers, smaller image")
            streak = []


@check("HR1017")
def package_cache(dockerfile, context):
    chain = stages.final_chain_indexes(dockerfile)
    pip_no_cache = packages.pip_cache_disabled(dockerfile, chain)
    for index in sorted(chain):
        for instruction in dockerfile.stages[index].instructions:
            if instruction.keyword != "RUN":
                continue
            for line, message in packages.package_cache_problems(instruction, pip_no_cache):
                yield Hit(line, message)


@check("HR1018")
def no_healthcheck(dockerfile, context):
    final = dockerfile.final_stage
    if final is None:
        return
    healthcheck = stages.effective_healthcheck(dockerfile, final)
    if healthcheck is None:
        yield Hit(final.line, "final stage has no HEALTHCHECK: orchestrators cannot tell a hung "
                              "service from a healthy one")
    elif stages.is_healthcheck_none(healthcheck):
        yield Hit(healthcheck.line, "HEALTHCHECK NONE switches health checking off in the final "
                                    "stage")



# --- shellcheck ----------------------------------------------------------------------

@check("HR1020")
def shellcheck_run(dockerfile, context):
    """ShellCheck's findings on the RUN instructions, each under its own code (SC2086)."""
    if not any(instruction.keyword == "RUN" for instruction in dockerfile.instructions()):
        return
    from .. import shellcheck
    binary = shellcheck.binary(context.options.shellcheck)
    if binary is None:
        return
    found, unchecked = shellcheck.scripts(dockerfile, context.text)
    for script, comment in shellcheck.check(binary, found):
        yield Hit(comment.line, f"{comment.message} ({shellcheck.WIKI}{comment.code})",
                  severity=comment.severity, rule=comment.code, column=comment.column,
                  anchor=script.instruction_line)
    if unchecked is not None:
        yield Hit(unchecked, f"ShellCheck checked the first {shellcheck.MAX_SCRIPTS} RUN "
                             "instructions only: this one and those after it were not checked",
                  severity="info")

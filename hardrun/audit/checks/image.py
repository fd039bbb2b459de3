"""Checks over an image (hardrun.frontends.image.ImageModel): its config, its history and
the files of its layers.

History steps are judged by the Dockerfile rules' own checks: each `created_by` is
turned back into the instruction it records (`/bin/sh -c #(nop)  ENV A=b` is `ENV A=b`,
`/bin/sh -c apt-get …` and BuildKit's `RUN /bin/sh -c … # buildkit` are `RUN …`) and
parsed as a one-instruction Dockerfile, so a secret, a `curl | sh` or an `ADD URL` is
found in an image exactly as in the Dockerfile that built it.

Every hit carries an ImageLocation: the image and its digest, the layer (index and
digest) and the path inside the image.
"""
from __future__ import annotations

import re

from ...errors import HardrunError
from ...frontends.image import CACHE_DIRS, SUDO_BINARIES, cache_of, secret_file
from ...spec.users import is_root_user
from ..findings import Hit, ImageLocation
from ..secrets import find_credential_literals, is_secret_name, is_secret_value
from . import build, check
from .buildutil import buildcontext, stages

# The setuid/setgid files a Debian, Ubuntu or Alpine base ships (usr-merged or not):
# reported as info, anything else as a warning.
KNOWN_SETUID = frozenset(prefix + name for prefix in ("usr/bin/", "bin/", "usr/sbin/", "sbin/")
                         for name in ("chfn", "chsh", "gpasswd", "mount", "newgrp", "passwd", "su",
                                      "umount", "chage", "expiry", "unix_chkpwd", "pam_extrausers_chkpwd",
                                      "wall", "write", "ssh-agent", "crontab", "bbsuid")) | frozenset({
    "usr/lib/openssh/ssh-keysign", "usr/lib/dbus-1.0/dbus-daemon-launch-helper",
    "usr/libexec/openssh/ssh-keysign", "usr/lib/policykit-1/polkit-agent-helper-1"})
_DEVICES = (b"3", b"4")
_BUILDKIT = "# buildkit"
_SHELLS = ("/bin/sh -c ", "/bin/bash -c ", "/bin/ash -c ", "sh -c ")
_BUILD_ARGS = re.compile(r"\|\d+ (?:\S+=\S* )*")      # `RUN |2 A=1 B=2 /bin/sh -c …`
_BUILD_ARG = re.compile(r"(\S+?)=(\S*) ")


# --- where ---------------------------------------------------------------------------

def _at(image, layer: int | None = None, path: str | None = None, removed_in: int | None = None):
    return ImageLocation(image.name, image.digest, layer, image.layer_digest(layer),
                         "/" + path if path is not None else None, removed_in)


def _layer_name(image, layer: int | None) -> str:
    return "config" if layer is None else f"layer {layer} ({image.layer_digest(layer)})"


def _file_hit(image, file, message: str, severity: str | None = None) -> Hit:
    return Hit(None, message, subject=f"{_layer_name(image, file.layer)} /{file.path}",
               severity=severity, image=_at(image, file.layer, file.path, file.removed_in))


def _config_hit(image, message: str, severity: str | None = None) -> Hit:
    return Hit(None, message, subject="config", severity=severity, image=_at(image))


def _present(image):
    """The kept files that are in the image's final filesystem."""
    return [file for file in image.files if file.removed_in is None]


# --- config --------------------------------------------------------------------------

@check("HR4001")
def image_runs_as_root(image, context):
    user = str(image.config.get("User") or "")
    if not user:
        yield _config_hit(image, "the image sets no user, so its containers run as root: set "
                                 "USER to a non-root uid")
    elif is_root_user(user):
        yield _config_hit(image, f"the image runs as root (User {user}): set a non-root uid")


@check("HR4002")
def secret_in_config_env(image, context):
    for item in image.config.get("Env") or ():
        name, equals, value = str(item).partition("=")
        if equals and is_secret_name(name) and is_secret_value(value):
            yield _config_hit(image, f"Env {name} holds a literal secret: every container and "
                                     "`inspect` of the image shows it")


@check("HR4003")
def exposed_admin_port(image, context):
    ports = " ".join(str(port) for port in image.config.get("ExposedPorts") or {})
    for spec, covered in stages.sensitive_ports(ports):
        listed = ", ".join(f"{port} ({service})" for port, service in covered)
        severity = "error" if any(port == 2375 for port, _ in covered) else None
        yield _config_hit(image, f"the image exposes {spec}: {listed}; remote administration does "
                                 "not belong in an application image", severity)


@check("HR4004")
def image_without_healthcheck(image, context):
    test = (image.config.get("Healthcheck") or {}).get("Test") or []
    if not test:
        yield _config_hit(image, "the image has no HEALTHCHECK: orchestrators cannot tell a hung "
                                 "service from a healthy one")
    elif test[0] == "NONE":
        yield _config_hit(image, "the image's HEALTHCHECK is NONE: health checking is off")


# --- history -------------------------------------------------------------------------

def instruction_of(created_by: str) -> str:
    """The Dockerfile instruction a history entry's `created_by` records."""
    text = created_by.strip()
    if text.endswith(_BUILDKIT):
        text = text[:-len(_BUILDKIT)].rstrip()
    if text.startswith("RUN "):
        text = _BUILD_ARGS.sub("", text[4:].lstrip(), count=1)
        return "RUN " + _without_shell(text)
    for shell in _SHELLS:
        if text.startswith(shell):
            rest = text[len(shell):].strip()
            if rest.startswith("#(nop)"):
                return _classic_metadata(rest[len("#(nop)"):].strip())
            return "RUN " + rest
    return text


def _without_shell(text: str) -> str:
    for shell in _SHELLS:
        if text.startswith(shell):
            return text[len(shell):]
    return text


def _classic_metadata(text: str) -> str:
    """The classic builder writes `ADD file:… in /dest` and `COPY dir:… in /dest`."""
    keyword = text.split(" ", 1)[0]
    if keyword in ("ADD", "COPY") and " in " in text:
        head, _, destination = text.rpartition(" in ")
        return f"{head} {destination.strip()}"
    return text


def _step_dockerfile(step, context):
    """The step as a one-instruction Dockerfile (None when it does not parse)."""
    from ...frontends.dockerfile import parse_dockerfile
    text = instruction_of(step.created_by).replace("\n", " \\\n")
    try:
        return parse_dockerfile("FROM scratch\n" + text, context.path)
    except HardrunError:
        return None


def _step_hits(image, context, checks, what: str):
    """Hits of the Dockerfile checks `checks` over each history step, located there."""
    for step in image.history:
        dockerfile = _step_dockerfile(step, context)
        if dockerfile is None:
            continue
        seen = set()
        for check_fn in checks:
            for hit in check_fn(dockerfile, context) or ():
                message = hit.message or what
                if message not in seen:
                    seen.add(message)
                    yield _step_hit(image, step, message, context, hit.severity)


def _step_hit(image, step, message: str, context, severity: str | None = None) -> Hit:
    where = f"history step {step.index}" + ("" if step.layer is None else f", layer {step.layer}")
    return Hit(None, f"{message} [{where}: {_shown_instruction(step, context)}]",
               subject=f"history {step.index}" if step.layer is None
               else f"{_layer_name(image, step.layer)} history {step.index}",
               severity=severity, image=_at(image, step.layer))


def _shown_instruction(step, context) -> str:
    """The step's instruction as the message shows it: only its keyword when it holds a
    secret (messages never repeat one)."""
    text = instruction_of(step.created_by).replace("\n", " ")
    if _holds_secret(step, context):
        return text.split(" ", 1)[0] + " …"
    return text if len(text) <= 120 else text[:117] + "..."


_SECRET_CHECKS = (build.secret_in_env, build.secret_in_arg_default, build.credential_literal)


def _holds_secret(step, context) -> bool:
    """Whether the step's text holds a secret by the Dockerfile rules' checks (its raw
    text searched when it does not parse)."""
    dockerfile = _step_dockerfile(step, context)
    if dockerfile is None:
        return any(find_credential_literals(step.created_by))
    return any(any(check_fn(dockerfile, context) or ()) for check_fn in _SECRET_CHECKS)


@check("HR4005")
def download_piped_to_shell(image, context):
    yield from _step_hits(image, context, (build.curl_pipe_shell,), "a download is piped into a shell")
    for field in ("Entrypoint", "Cmd"):
        words = image.config.get(field) or []
        if len(words) >= 3 and str(words[0]).rsplit("/", 1)[-1] in ("sh", "bash", "ash", "dash") \
                and words[1] == "-c":
            from ...frontends.dockerfile import parse_dockerfile
            try:
                dockerfile = parse_dockerfile("FROM scratch\nRUN " + str(words[2]).replace("\n", " \\\n"),
                                              context.path)
            except HardrunError:
                continue
            for hit in build.curl_pipe_shell(dockerfile, context):
                yield _config_hit(image, f"the image's {field} runs a shell in which {hit.message}")


@check("HR4006")
def secret_in_history(image, context):
    yield from _step_hits(image, context, _SECRET_CHECKS, "a credential is in the history")
    for step in image.history:
        for name in _secret_build_args(step.created_by):
            yield _step_hit(image, step, f"build argument {name} was given a literal secret, which "
                                         "the history records with every RUN after its ARG", context)
        if _step_dockerfile(step, context) is None:    # unparsable: its raw text is still searched
            for credential in find_credential_literals(step.created_by):
                yield _step_hit(image, step, f"{credential.description} in the image history", context)
                break


def _secret_build_args(created_by: str) -> list:
    """Secret-named build arguments with a value, as BuildKit records them before a RUN
    (`RUN |2 NPM_TOKEN=abc OTHER=1 /bin/sh -c …`)."""
    text = created_by.strip()
    if not text.startswith("RUN |"):
        return []
    match = _BUILD_ARGS.match(text[4:])
    return [name for name, value in _BUILD_ARG.findall(match.group(0)[match.group(0).index(" ") + 1:])
            if is_secret_name(name) and is_secret_value(value)] if match else []


@check("HR4007")
def add_remote_in_history(image, context):
    yield from _step_hits(image, context, (build.add_remote,), "ADD fetched a URL")


@check("HR4008")
def whole_context_in_history(image, context):
    for step in image.history:
        dockerfile = _step_dockerfile(step, context)
        instruction = dockerfile.final_stage.instructions[-1] if dockerfile and dockerfile.final_stage \
            and dockerfile.final_stage.instructions else None
        if instruction is None or instruction.keyword not in ("COPY", "ADD") or instruction.flag("from"):
            continue
        sources = buildcontext.copy_sources(instruction)
        destination = instruction.words[-1] if instruction.words else ""
        whole = [s for s in sources if s in buildcontext.WHOLE_CONTEXT]
        # the classic builder records `COPY . .` as a directory copied into the working
        # directory, which it writes as `dir:<hash> in /` when that is the root
        if not whole and destination in ("/", ".", "./"):
            whole = [s for s in sources if s.startswith("dir:")]
        if whole:
            yield _step_hit(image, step, f"{instruction.keyword} {whole[0]} copied a whole directory "
                                         "(the build context?) into the image: .git, .env and keys "
                                         "go with it", context)


# --- files ---------------------------------------------------------------------------

@check("HR4009")
def setuid_files(image, context):
    for file in _present(image):
        if not file.is_file or not file.mode & 0o6000:
            continue
        bits = " and ".join(name for bit, name in ((0o4000, "setuid"), (0o2000, "setgid"))
                            if file.mode & bit)
        if file.path in KNOWN_SETUID or file.path in SUDO_BINARIES:
            yield _file_hit(image, file, f"/{file.path} is {bits} (mode {file.mode:04o}), as the base "
                                         "distribution ships it", severity="info")
        else:
            yield _file_hit(image, file, f"/{file.path} is {bits} (mode {file.mode:04o}) and not one "
                                         "the base distribution ships: a way to gain privileges "
                                         "inside the container; drop the bit")


@check("HR4010")
def world_writable(image, context):
    for file in _present(image):
        if not file.mode & 0o002 or file.type in _DEVICES:
            continue
        if file.is_dir and not file.mode & 0o1000:
            yield _file_hit(image, file, f"/{file.path} is a world-writable directory without the "
                                         f"sticky bit (mode {file.mode:04o}): any user can replace "
                                         "others' files in it")
        elif not file.is_dir:
            yield _file_hit(image, file, f"/{file.path} is world-writable (mode {file.mode:04o})")


@check("HR4011")
def secret_files(image, context):
    for file in image.files:
        what = secret_file(file.path)
        if what is None or not (file.is_file or (file.is_dir and file.path.endswith(".git"))):
            continue
        message = f"/{file.path} is {what}, in layer {file.layer}"
        if file.removed_in is not None:
            message += (f": removed (deleted or replaced) in layer {file.removed_in} but still in the "
                        f"image (layer {file.layer}'s blob holds it)")
        yield _file_hit(image, file, message + ": anyone who pulls the image can read it")


@check("HR4012")
def empty_passwords(image, context):
    for file in _present(image):
        if file.path != "etc/shadow" or file.content is None:
            continue
        for line in file.content.decode("utf-8", "replace").splitlines():
            user, colon, rest = line.partition(":")
            if colon and user and not line.startswith("#") and rest.split(":", 1)[0] == "":
                yield _file_hit(image, file, f"/etc/shadow: {user} has an empty password: anyone "
                                             f"can log in or `su` as {user} without one")


@check("HR4013")
def sudo_in_image(image, context):
    for file in _present(image):
        if file.path in SUDO_BINARIES and file.is_file:
            yield _file_hit(image, file, f"/{file.path} is installed: a container needs no sudo "
                                         "(run as the user the process needs)")
        elif file.content is not None and file.path != "etc/shadow":
            for number, line in enumerate(file.content.decode("utf-8", "replace").splitlines(), 1):
                if "NOPASSWD" in line and not line.lstrip().startswith("#"):
                    yield _file_hit(image, file, f"/{file.path} line {number} grants sudo without a "
                                                 "password (NOPASSWD)", severity="error")


@check("HR4014")
def package_caches(image, context):
    found: dict = {}
    for file in _present(image):
        prefix = cache_of(file.path)
        if prefix is not None and not file.is_dir:
            count, size, first = found.get(prefix, (0, 0, file))
            found[prefix] = (count + 1, size + file.size, first)
    for prefix, (count, size, first) in found.items():
        yield Hit(None, f"/{prefix} holds {CACHE_DIRS[prefix]}: {count} files, {size} bytes left "
                        "in the image; remove them in the step that made them",
                  subject=f"{_layer_name(image, first.layer)} /{prefix}",
                  image=_at(image, first.layer, prefix.rstrip("/")))

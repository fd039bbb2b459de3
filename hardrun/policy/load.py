"""Reading policies: safe YAML with node marks, schema validation, `extends:` chains.

Every error names the file, the line and the column of the YAML node at fault and
says what was expected. Nothing in a policy is executed or fetched: it is plain data
read with the safe loader, and `extends:` only names built-in policies or files.

An error in a file reached through `extends:` gives its location but never its content
(the file may be anything: a token, /etc/passwd). A policy nobody named, discovered in a
repository (`load_found_policy`), may extend only built-in policies and files inside
that repository, and is marked `discovered`: it may tighten `hardrun run`, never loosen it.
"""
from __future__ import annotations

import os
from functools import lru_cache

from ..errors import HardrunError, ParseError, UsageError
from ..resources import data_path
from ..spec.capabilities import known_capability, normalize_capability
from ..spec.record import replace
from ..parsing import marked
from ..parsing.marked import (Located, in_document_order, located_error, located_errors,
                              parse_marked, validate_located)
from ..userfiles import read_text, within
from .discover import DEFAULT, POLICY_FILE
from .model import Exemption, HostMount, Policy, Runtime, Seccomp

MAX_CHAIN = 16

TYPE_CHECKING = False  # pathlib costs start-up time: built-in policies are read by plain paths
if TYPE_CHECKING:
    from pathlib import Path


@lru_cache(maxsize=1)
def schema() -> dict:
    """The policy format's JSON Schema (hardrun/policy/schema.json)."""
    import json     # here: importing json costs every audit milliseconds
    with open(os.path.join(os.path.dirname(__file__), "schema.json"), encoding="utf-8") as stream:
        return json.load(stream)


def builtin_policies() -> dict[str, Path]:
    """Built-in policy name -> file."""
    from pathlib import Path
    return {name: Path(path) for name, path in _builtin_files()}


# The bundled files do not change while hardrun runs, and every audit loads a policy
# (each `extends:` level asks again): the directory is listed and resolved only once.
@lru_cache(maxsize=1)
def _builtin_files() -> tuple[tuple[str, str], ...]:
    """(name, path) of each built-in policy, by name."""
    folder = data_path("policies")
    return tuple((name[:-len(".yaml")], os.path.join(folder, name))
                 for name in sorted(os.listdir(folder)) if name.endswith(".yaml") and not name.startswith("."))


@lru_cache(maxsize=1)
def _builtin_directory() -> str:
    return os.path.realpath(data_path("policies"))


@lru_cache(maxsize=1)
def _parser_code() -> bytes:
    """The YAML reader's source (parsing/marked.py): part of a cached built-in policy's key."""
    with open(marked.__file__, "rb") as stream:
        return stream.read()


def load_policy(name_or_file: str | os.PathLike | None = None) -> Policy:
    """The effective policy named `name_or_file` (a built-in name or a file; None: default).
    A built-in name wins over a file of that name in the current directory (`./strict`)."""
    reference = str(name_or_file) if name_or_file is not None else DEFAULT
    path = _resolve(reference, base=None)
    return _load_chain(path, display=reference if reference in dict(_builtin_files()) else None)


def load_found_policy(found: str) -> Policy:
    """The policy `find_policy` returned: `default`, or a repository's .hardrun.yaml that
    nobody named. That file and every file it extends must be inside the repository (or
    built in), and the policy is marked `discovered`."""
    if found == DEFAULT:
        return load_policy(DEFAULT)
    repository = os.path.dirname(found)
    if not _inside(found, repository):
        raise UsageError(f"{found}: a {POLICY_FILE} that links out of its repository is not "
                         "used (name a policy with --policy instead)")
    return replace(_load_chain(found, within=repository), discovered=True)   # found: a real path


def named_or_found_policy(reference: str | None, audited: str) -> Policy:
    """The policy `reference` names, else the one `find_policy` finds for `audited`."""
    from .discover import find_policy
    return load_policy(reference) if reference else load_found_policy(find_policy(audited))


def _inside(path, directory: str) -> bool:
    return within(str(path), os.path.realpath(directory))


class _ContentFree(ParseError):
    """An error about a policy file whose message quotes nothing from that file: it may be
    shown for a file reached through `extends:`."""


def load_policy_file(path: str | os.PathLike) -> Policy:
    """The effective policy in the file at `path` (never a built-in name)."""
    from pathlib import Path
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no policy file {str(path)!r}")
    return _load_chain(str(path))


def load_policy_text(text: str, path: str = "<policy>", base_dir: str | None = None) -> Policy:
    """The effective policy written in `text` (its relative `extends:` resolve from base_dir)."""
    document = _parse(text, path)
    return _build(path, document, base_dir or os.getcwd(), seen=(path,))


def _resolve(reference: str, base: str | None) -> str:
    """The file `reference` names: a built-in policy's, else the file (relative to `base`),
    spelled as pathlib spells it (the name errors and `extends:` cycles show)."""
    builtins = dict(_builtin_files())
    if reference in builtins and os.sep not in reference:
        return builtins[reference]
    from pathlib import Path
    path = Path(reference)
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if not path.is_file():
        names = ", ".join(builtins)
        raise UsageError(f"no policy {reference!r}: not a built-in policy ({names}) nor a file")
    return str(path)


def _load_chain(path: str, display: str | None = None, seen: tuple = (),
                within: str | None = None) -> Policy:
    shown = display or path
    key = os.path.realpath(path)
    try:
        text = read_text(path)
    except HardrunError as error:
        raise ParseError(f"cannot read policy: {error.located()}", path=path) from None
    document = _parse_builtin(text, path) if _is_builtin(path) else _parse(text, path)
    validity = _validity_key(text)
    if not _validated_before(validity):
        _validate(path, document)
        from .. import cache
        cache.store(VALIDATED, validity, True)
    return _build(path, document, _parent(path), seen + (key,), shown, within, validated=True)


def _parent(path: str) -> str:
    """The directory of `path` as pathlib's `.parent` spells it (`.` for a bare name)."""
    return os.path.dirname(path) or "."


def _build(path: str, document: Located, base_dir: str, seen: tuple, shown: str | None = None,
           within: str | None = None, validated: bool = False) -> Policy:
    if not validated:
        _validate(path, document)
    data = document.data
    assert isinstance(data, dict), "the schema's document is an object"
    parent = None
    if "extends" in data:
        parent = _load_parent(path, document, data["extends"], base_dir, seen, within)
    return _merge(parent, data, shown or path, path, document)


def _load_parent(path: str, document: Located, reference: str, base_dir: str, seen: tuple,
                 within: str | None) -> Policy:

    def refuse(message: str):
        line, column = document.where(("extends",))
        return _ContentFree(message, path=path, line=line, column=column)

    if len(seen) > MAX_CHAIN:
        raise refuse(f"extends chain deeper than {MAX_CHAIN}")
    try:
        target = _resolve(reference, base_dir)
    except UsageError as error:
        raise located_error(path, document, ("extends",), error.message) from None
    if within is not None and not _is_builtin(target) and not _inside(target, within):
        raise refuse("a repository's policy may extend only built-in policies and files inside "
                     "the repository (name another policy with --policy)")
    if os.path.realpath(target) in seen:
        raise refuse("extends makes a cycle: a policy cannot extend itself")
    try:
        return _load_chain(target, reference if reference in dict(_builtin_files()) else None,
                           seen, within)
    except _ContentFree:
        raise
    except HardrunError as error:     # the parent may be any file: its location, never its text
        where = error.path or target
        raise _ContentFree(f"not a valid policy (extended by {path}; its content is not shown: "
                           f"check it with `hardrun policy validate {where}`)",
                           path=where, line=error.line, column=error.column) from None


# -- YAML with marks -----------------------------------------------------------------------

def _parse(text: str, path: str) -> Located:
    return parse_marked(text, path, "empty policy: expected a mapping with at least `version: 1`")


def _is_builtin(path: str) -> bool:
    return os.path.realpath(_parent(path)) == _builtin_directory()


def _parse_builtin(text: str, path: str) -> Located:
    """A built-in policy, parsed once and then read from the cache (hardrun/cache.py):
    every audit reads one, and importing PyYAML for it would cost more than the
    rest of auditing a small Dockerfile. Keyed by the policy's text and this module."""
    from .. import cache
    key = cache.fingerprint([_parser_code(), text.encode("utf-8")])
    entry = cache.load("policy", key)
    try:
        return Located(entry["data"], {tuple(p): (line, column) for p, line, column in entry["values"]},
                       {tuple(p): (line, column) for p, line, column in entry["keys"]})
    except (TypeError, KeyError, ValueError):    # no entry, or not one this code wrote
        pass
    document = _parse(text, path)
    cache.store("policy", key, {"data": document.data,
                                "values": [[list(p), *where] for p, where in document.values.items()],
                                "keys": [[list(p), *where] for p, where in document.keys.items()]})
    return document


# -- validation --------------------------------------------------------------------------

# A policy file's text that passed validation: the schema check (which needs `json` and
# the schema) and the rule and capability names cost about 2 ms of each audit, for a file
# that rarely changes. Keyed by the text and by what judged it: the schema, this module,
# the YAML reader, the capability names, the ShellCheck codes and the rule files (the
# vocabulary). Only a pass is stored; a policy in error is judged, and reported, every time.
VALIDATED = "policy-valid"


def _validity_key(text: str) -> str:
    from .. import cache
    from ..audit.rules import rules_key
    from ..spec import capabilities
    here = os.path.dirname(__file__)
    judges = [os.path.join(here, "schema.json"), __file__, marked.__file__, capabilities.__file__,
              os.path.join(os.path.dirname(here), "audit", "shellcheck.py")]   # is_code: which SC codes exist
    return cache.fingerprint([text.encode("utf-8"), cache.identities(judges), rules_key().encode()])


def _validated_before(key: str) -> bool:
    from .. import cache
    return cache.load(VALIDATED, key) is True


def _validate(path: str, document: Located) -> None:
    validate_located(schema(), document, path)
    _check_names(path, document)


def _check_names(path: str, document: Located) -> None:
    for error in _name_errors(path, document):
        raise error


def _name_errors(path: str, document: Located):
    """Rule ids, practices and capabilities must be ones this hardrun knows: a ParseError
    for each that is not (in a document the schema accepts, or in the parts of one that
    have the schema's shape)."""
    from ..audit.rules import all_rules, practices
    from ..audit.shellcheck import is_code
    rules, practice_names = all_rules(), practices()     # the rule files are the vocabulary
    data = document.data

    def unknown_rule(where: tuple, rule_id, at_key: bool):
        if isinstance(rule_id, str) and rule_id not in rules and not is_code(rule_id):
            yield located_error(path, document, where, f"unknown rule {rule_id} (see `hardrun rules`)", at_key)

    def unknown_practice(where: tuple, name, at_key: bool):
        if isinstance(name, str) and name not in practice_names:
            yield located_error(path, document, where, f"unknown practice {name!r} (expected one of: "
                                f"{', '.join(sorted(practice_names))})", at_key)

    for rule_id in _mapping(data, "rules"):
        yield from unknown_rule(("rules", rule_id), rule_id, True)
    for name in _mapping(data, "practices"):
        yield from unknown_practice(("practices", name), name, True)
    for index, exemption in enumerate(_list(data, "exemptions")):
        if isinstance(exemption, dict):
            yield from unknown_rule(("exemptions", index, "rule"), exemption.get("rule"), False)
            yield from unknown_practice(("exemptions", index, "practice"), exemption.get("practice"), False)
    for index, name in enumerate(_list(data, "allowed-capabilities")):
        if isinstance(name, str) and known_capability(name) is None:
            yield located_error(path, document, ("allowed-capabilities", index),
                                f"unknown capability {name!r} "
                                "(expected a Linux capability such as NET_BIND_SERVICE)")


def _mapping(data, key: str) -> dict:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _list(data, key: str) -> list:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, list) else []


def policy_file_errors(path: str | os.PathLike) -> list[HardrunError]:
    """Every error of the policy file at `path`, in document order, as a schema validator
    reports them: unreadable or invalid YAML is one error; otherwise each schema error
    and each unknown rule, practice or capability; a file without any of those is then
    loaded whole (its `extends:` chain, its values), which may give one more."""
    from pathlib import Path
    path = Path(path)
    if not path.is_file():
        return [UsageError(f"no policy file {str(path)!r}")]
    try:
        text = read_text(str(path))
        document = _parse(text, str(path))
    except HardrunError as error:
        if error.path is None:
            error = ParseError(f"cannot read policy: {error.located()}", path=str(path))
        return [error]
    errors = in_document_order([*located_errors(schema(), document, str(path)),
                                *_name_errors(str(path), document)])
    if errors:
        return list(errors)
    try:
        load_policy_file(path)
    except HardrunError as error:
        return [error]
    return []


# -- merging the chain -------------------------------------------------------------------

_SWITCHES = {True: "on", False: "off"}


def _switch(value):
    return _SWITCHES.get(value, value) if isinstance(value, bool) else value


def _merge(parent: Policy | None, data: dict, name: str, path: str, document: Located) -> Policy:
    base = parent or Policy(name=name, chain=())
    runtime = _merge_runtime(base.runtime, data.get("runtime", {}))
    return Policy(
        name=name,
        chain=(name,) + base.chain,
        description=data.get("description", base.description if parent else None),
        fail_on=data.get("fail-on", base.fail_on),
        default_rules=_switch(data.get("default-rules", base.default_rules)),
        rules={**base.rules, **{k: _switch(v) for k, v in data.get("rules", {}).items()}},
        practices={**base.practices, **{k: _switch(v) for k, v in data.get("practices", {}).items()}},
        trusted_registries=_tuple(data, "trusted-registries", base.trusted_registries),
        allowed_capabilities=tuple(normalize_capability(c) for c in data["allowed-capabilities"])
        if "allowed-capabilities" in data else base.allowed_capabilities,
        allowed_host_mounts=tuple(_host_mount(m) for m in data["allowed-host-mounts"])
        if "allowed-host-mounts" in data else base.allowed_host_mounts,
        allowed_host_ports=_tuple(data, "allowed-host-ports", base.allowed_host_ports),
        allowed_volume_types=_tuple(data, "allowed-volume-types", base.allowed_volume_types),
        allowed_sysctls=_tuple(data, "allowed-sysctls", base.allowed_sysctls),
        runtime=runtime,
        exemptions=base.exemptions + tuple(
            _exemption(item, path, document.where(("exemptions", index))[0])
            for index, item in enumerate(data.get("exemptions", []))),
    )


def _tuple(data: dict, key: str, inherited):
    return tuple(data[key]) if key in data else inherited


def _host_mount(item) -> HostMount:
    if isinstance(item, str):
        return HostMount(item)
    return HostMount(item["path"], item.get("read-only", True))


def _exemption(item: dict, path: str, line: int) -> Exemption:
    import datetime   # here, not at the top: only policies with dates need it (start-up time)
    expires = item.get("expires")
    return Exemption(
        reason=item["reason"], rule=item.get("rule"), practice=item.get("practice"),
        files=tuple(item.get("files", ())), services=tuple(item.get("services", ())),
        images=tuple(item.get("images", ())),
        expires=datetime.date.fromisoformat(expires) if expires else None,
        source=path, line=line)


_RUNTIME_KEYS = {"gate": "gate", "no-new-privileges": "no_new_privileges",
                 "read-only-root": "read_only_root", "drop-all-capabilities": "drop_all_capabilities",
                 "non-root": "non_root", "userns": "userns", "resource-limits": "resource_limits",
                 "user": "user", "pids-limit": "pids_limit"}


def _merge_runtime(base: Runtime, data: dict) -> Runtime:
    changes = {attribute: data[key] for key, attribute in _RUNTIME_KEYS.items() if key in data}
    if "memory" in data:
        from ..parsing.runvalues import parse_size   # here: with the run model, 0.7 ms of every audit
        changes["memory"] = parse_size(data["memory"])
    if "seccomp" in data:
        seccomp = data["seccomp"]
        changes["seccomp"] = Seccomp(
            required=seccomp.get("required", base.seccomp.required),
            allowed=tuple(seccomp["allowed"]) if "allowed" in seccomp else base.seccomp.allowed)
    return Runtime(**{**base.__dict__, **changes})

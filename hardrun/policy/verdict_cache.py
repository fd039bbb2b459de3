"""A cache of the policy gate's verdicts on OCI bundles (`hardrun-oci create`).

Judging a config.json costs the policy's YAML, the audit engine and its rules: several
times the rest of a container start. The verdict (allowed, or the refusal's message) is
kept on disk under a key that hashes everything the plain path reads: the exact bytes of
config.json, whether the floor is raised, the policy reference and the directory relative
names resolve from, hardrun's version and the size and mtime of every file of its code,
rules and built-in policies. The entry also lists each policy file of the `extends:`
chain with its sha256, checked again on every hit: an edited policy misses.

An entry is trusted as the seccomp filter cache trusts one (runtime/seccomp_cache.py): a
directory of ours, nobody else may write to it or above it (unless sticky), a regular
file of ours with mode 0600 whose header carries the key and the sha256 of the body.
Anything else is judged again, never believed. Refusals are cached too, so a refused
bundle is refused from the cache with the same message.
"""
from __future__ import annotations

import os

from .. import __version__
from .. import jsonlite
from ..runtime.seccomp_cache import default_cache_dir, read_entry, sha256, usable_cache_dir, write_entry
from ..spec.oci import ENGINE_FILES, is_bind, is_engine_file, is_engine_source, joined_namespace

_MAGIC = b"hardrun-verdict 1"
_MAX_ENTRY = 64 * 1024
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cache_dir() -> str:
    """Beside the seccomp cache: `/var/cache/hardrun/verdicts` for root."""
    return os.environ.get("HARDRUN_VERDICT_CACHE") or os.path.join(os.path.dirname(default_cache_dir()),
                                                                   "verdicts")


def key(config: bytes, reference: str, floor: bool, bundle: str | None = None) -> str:
    """The hash of what decides the verdict, apart from the policy files' content.
    `bundle`: the bundle's directory, which the gate reads too (see gate_view)."""
    digest = sha256()
    view = gate_view(config, bundle) if bundle is not None else [config]
    for part in (_MAGIC, __version__.encode(), _code_signature(), *view, reference.encode(),
                 _base_directory(reference).encode(), b"floor" if floor else b"no-floor"):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


# What of a config.json no part of the gate reads (the OCI front end, raise_floor, the
# rules: tests/oci/test_gate_view.py shows each gives the same verdict and rule ids whatever
# it holds). Engines write per-container values there: the id in cgroupsPath, in Docker's
# prestart hook, in CRI annotations. Of the annotations, the sandbox one is read, only to decide
# what is the engine's own (engine files): that decision is in the key instead.
_UNREAD_TOP = ("hooks",)
_UNREAD_LINUX = ("cgroupsPath",)
# Read only for their type (a string): the hostname and root.path (no rule reads either).
_STRING_ONLY = (("hostname",), ("root", "path"))
# Docker's HOSTNAME=<short id>. The rules read the environment for secrets only: HOSTNAME is
# not a secret's name, and no credential pattern matches lower-case hex digits alone (every
# one needs another character: a capital, a letter past f, '_', '-', ':' or '@').
_ANOTHER_CONTAINER = "another-container"     # a joined namespace's path the front end judges not the host's
_HEX_DIGITS = frozenset("0123456789abcdef")
_HOSTNAME_VARIABLE = "HOSTNAME="
MIN_HEX_ID, MAX_HEX_ID = 12, 64


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list) -> dict:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _DuplicateKey("a key given twice")
    return document


def gate_view(config: bytes, bundle: str) -> list[bytes]:
    """What the gate reads of a bundle, as key parts.

    A config.json in the compact canonical form engines write (the parsed document written
    back compactly gives its exact bytes, and no key is given twice, so nothing can hide
    behind the parsed document) counts without what the gate never reads (_UNREAD_TOP,
    _UNREAD_LINUX, the annotations: the sandbox's is read only for the engine-file decision,
    which is in the key), each namespace joined by path as the front end judges it (the host's
    path kept, any other fixed), with a fixed value for what it
    reads only as a string (_STRING_ONLY) and for Docker's HOSTNAME=<hex>, the environment
    sorted where no name is given twice, and for each bind
    that the front end takes for the engine's own copy of /etc/hosts, /etc/hostname, /etc/resolv.conf,
    /run/.containerenv or /dev/shm (no rule reads its source) that decision instead of its source,
    those binds sorted within their places where no mount's outcome changes (_sort_engine_copies).

    Any other config counts byte for byte, with the bundle's directory and whether each
    engine file's source is a file (the front end's decision reads them). Anything
    unexpected keeps more in the key: a miss is always safe."""
    directory = [b"bundle", os.path.abspath(bundle).encode()]
    document = _parsed_object(config)
    if document is None:
        return [config, *directory]
    if not _in_compact_form(document, config):
        return [config, *directory, _engine_file_facts(document.get("mounts")) or b"?"]
    engine_copies = _drop_engine_file_sources(document, os.path.join(os.path.abspath(bundle), "config.json"))
    if engine_copies is None:
        return [config, *directory, b"?"]
    _sort_engine_copies(document["mounts"] if engine_copies else [], engine_copies)
    _drop_unread(document)
    _judge_joined_paths(document.get("linux"))
    _blank_string_only(document)
    _normalise_environment(document.get("process"))
    return [b"view", jsonlite.dumps(document, compact=True).encode(), b"engine files", engine_copies]


def _parsed_object(config: bytes) -> dict | None:
    """The config as an object, or None: not JSON, not an object, or a key given twice."""
    try:
        document = jsonlite.loads(config, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _in_compact_form(document: dict, config: bytes) -> bool:
    """Whether the parsed document written back compactly gives the config's exact bytes (a
    final newline aside): then nothing can hide behind the parsed document."""
    return jsonlite.dumps(document, compact=True).encode() in (config, config.removesuffix(b"\n"))


def _drop_unread(document: dict) -> None:
    """Remove what the gate never reads (_UNREAD_TOP, _UNREAD_LINUX, the annotations)."""
    for name in _UNREAD_TOP:
        document.pop(name, None)
    linux = document.get("linux")
    if isinstance(linux, dict):
        for name in _UNREAD_LINUX:
            linux.pop(name, None)
    # the front end reads the sandbox annotation only for what is the engine's own: that
    # decision is in the key (engine_copies), and nothing else of the annotations is read
    document.pop("annotations", None)


def _blank_string_only(document: dict) -> None:
    """A fixed value for each field read only as a string (_STRING_ONLY)."""
    for *parents, name in _STRING_ONLY:
        section: dict | None = document
        for parent in parents:
            section = section.get(parent) if isinstance(section, dict) else None
        if isinstance(section, dict) and isinstance(section.get(name), str):
            section[name] = ""


def _normalise_environment(process) -> None:
    """Docker's HOSTNAME=<hex> fixed, the environment sorted where no name is given twice."""
    if isinstance(process, dict) and isinstance(process.get("env"), list):
        process["env"] = _sorted_environment([_HOSTNAME_VARIABLE if _is_hex_hostname(item) else item
                                              for item in process["env"]])


def _judge_joined_paths(linux) -> None:
    """A namespace joined by path counts as the front end judges it (the host's, or another
    container's: no rule reads which; spec.oci.joined_namespace), not by its path: a CRI pod's
    members join `/proc/<sandbox pid>/ns/*`. A path judged the host's is kept as it is."""
    entries = linux.get("namespaces") if isinstance(linux, dict) else None
    if not isinstance(entries, list):
        return
    for entry in entries:
        path = entry.get("path") if isinstance(entry, dict) else None
        if isinstance(path, str) and path and joined_namespace(path) != "host":
            entry["path"] = _ANOTHER_CONTAINER


def _sorted_environment(env: list) -> list:
    """Podman writes the environment in a varying order. Sorted where the order decides
    nothing: each item a NAME=value string, no name given twice (the first would win)."""
    if not all(isinstance(item, str) and "=" in item for item in env):
        return env
    if len({item.partition("=")[0] for item in env}) < len(env):
        return env
    return sorted(env)


def _is_hex_hostname(item) -> bool:
    if not isinstance(item, str) or not item.startswith(_HOSTNAME_VARIABLE):
        return False
    value = item[len(_HOSTNAME_VARIABLE):]
    return MIN_HEX_ID <= len(value) <= MAX_HEX_ID and set(value) <= _HEX_DIGITS


def _drop_engine_file_sources(document: dict, config_path: str) -> bytes | None:
    """Remove the source of each bind the front end takes for an engine's own file and
    return their indexes (the decision, in the key instead of the path); None when the
    mounts are not a list of objects (the front end refuses those)."""
    mounts = document.get("mounts")
    if mounts is None:
        return b""
    if not isinstance(mounts, list) or not all(isinstance(mount, dict) for mount in mounts):
        return None
    copies = []
    for index, mount in enumerate(mounts):
        options = mount.get("options", [])
        kind = mount.get("type", "")
        if not isinstance(options, list) or not isinstance(kind, str):
            continue        # the front end refuses it (or reads it otherwise): kept whole
        if is_bind(kind, [str(option) for option in options]) and is_engine_file(
                mount.get("destination"), mount.get("source"), config_path, document.get("annotations")):
            del mount["source"]
            copies.append(str(index))
    return ",".join(copies).encode()


def _sort_engine_copies(mounts: list, engine_copies: bytes) -> None:
    """Podman lists its own binds in a varying order: sort the engine's copies by destination
    within the places they hold, where that changes no mount's outcome (and so nothing the gate
    reads): their destinations are distinct, and every other mount is neither at nor under one
    of them and, where it is above one (/dev above /dev/shm), comes before all of them."""
    places = [int(index) for index in engine_copies.decode().split(",")] if engine_copies else []
    copies = [mounts[index] for index in places]
    destinations = [mount.get("destination") for mount in copies]
    if len(places) < 2 or not all(isinstance(d, str) for d in destinations) or len(set(destinations)) < len(places):
        return
    for index, mount in enumerate(mounts):
        other = mount.get("destination")
        if index in places:
            continue
        if not isinstance(other, str):
            return
        for destination in destinations:
            if _at_or_under(other, destination) or (_at_or_under(destination, other) and index > places[0]):
                return
    for index, mount in zip(places, sorted(copies, key=lambda mount: mount["destination"])):
        mounts[index] = mount


def _at_or_under(path: str, top: str) -> bool:
    path, top = os.path.normpath(path), os.path.normpath(top)
    return path == top or path.startswith(top.rstrip("/") + "/")


def _engine_file_facts(mounts) -> bytes | None:
    """For each mount onto an engine file (/etc/hosts, ...): is its source a regular file
    (for /dev/shm: a directory) now. None when the mounts are not a list of objects (the front end refuses those)."""
    if mounts is None:
        return b""
    if not isinstance(mounts, list) or not all(isinstance(mount, dict) for mount in mounts):
        return None
    facts = []
    for mount in mounts:
        destination, source = mount.get("destination"), mount.get("source")
        if isinstance(destination, str) and destination in ENGINE_FILES:
            facts.append(b"1" if isinstance(source, str) and is_engine_source(destination, source) else b"0")
    return b"".join(facts)


def _base_directory(reference: str) -> str:
    """The directory the policy reference resolves from: the current one for a relative path,
    none for a built-in name or an absolute path, which resolve the same from anywhere (and
    whose relative `extends:` resolve from their own file's directory). containerd's shim runs
    the runtime in each container's own bundle directory: with the current directory always in
    the key, no `create` under Docker or containerd ever hit."""
    if os.path.isabs(reference) or _is_builtin_name(reference):
        return ""
    try:
        return os.getcwd()
    except OSError:           # removed under us: no relative policy path can resolve either
        return "?"


def _is_builtin_name(reference: str) -> bool:
    # policy/load.py's _resolve and _builtin_files, without their imports on this hot path:
    # a built-in's name wins over a file of that name in the current directory
    return (os.sep not in reference and not reference.startswith(".")
            and os.path.isfile(os.path.join(_data_dir("policies"), reference + ".yaml")))


def _code_signature() -> bytes:
    """Name, size and mtime of hardrun's code, rules and policies: an edited rule misses."""
    entries: list[str] = []
    for top in (_PACKAGE, _data_dir("rules"), _data_dir("policies")):
        _scan(top, entries)
    return "\n".join(sorted(entries)).encode()


def _data_dir(name: str) -> str:
    # resources.data_dir's answer, without the pathlib import it costs on this hot path
    installed = os.path.join(_PACKAGE, name)
    return installed if os.path.isdir(installed) else os.path.join(os.path.dirname(_PACKAGE), name)


def _scan(directory: str, entries: list) -> None:
    try:
        found = list(os.scandir(directory))
    except OSError:
        entries.append(directory + " unreadable")
        return
    for entry in found:
        if entry.name == "__pycache__":
            continue
        if entry.is_dir(follow_symlinks=False):
            _scan(entry.path, entries)
        else:
            info = entry.stat(follow_symlinks=False)
            entries.append(f"{entry.path} {info.st_size} {info.st_mtime_ns}")


def lookup(cache_key: str, directory: str | None = None) -> tuple[bool, str | None] | None:
    """(True, None) for an allowed bundle, (False, message) for a refused one, or None:
    no entry, an entry failing any check, or a policy file of its chain changed since."""
    directory = directory or cache_dir()
    if not os.path.isdir(directory) or not usable_cache_dir(directory):
        return None
    body = _read_entry(os.path.join(directory, cache_key + ".verdict"), cache_key)
    if body is None:
        return None
    try:
        entry = jsonlite.loads(body)
        policy_files = [(str(path), str(digest)) for path, digest in entry["policy_files"]]
        refusal = entry["refusal"]
    except (ValueError, TypeError, KeyError):
        return None
    if refusal is not None and not isinstance(refusal, str):
        return None
    if not policy_files or any(_file_digest(path) != digest for path, digest in policy_files):
        return None
    return refusal is None, refusal


def _read_entry(path: str, cache_key: str) -> bytes | None:
    data = read_entry(path, _MAX_ENTRY)
    if data is None:
        return None
    header, newline, body = data.partition(b"\n")
    if not newline or header != b" ".join((_MAGIC, cache_key.encode(), sha256(body).hexdigest().encode())):
        return None
    return body


def _file_digest(path: str) -> str | None:
    try:
        with open(path, "rb") as stream:
            return sha256(stream.read()).hexdigest()
    except OSError:
        return None


def store(cache_key: str, policy_files: list[str], refusal: str | None, directory: str | None = None) -> bool:
    """Keep the verdict (refusal None: allowed) with the sha256 of each policy file read."""
    directory = directory or cache_dir()
    digests = [(os.path.abspath(path), _file_digest(path)) for path in policy_files]
    if not digests or any(digest is None for _, digest in digests) or not usable_cache_dir(directory):
        return False
    body = jsonlite.dumps({"policy_files": digests, "refusal": refusal}).encode()
    content = b" ".join((_MAGIC, cache_key.encode(), sha256(body).hexdigest().encode())) + b"\n" + body
    return write_entry(directory, cache_key + ".verdict", content)

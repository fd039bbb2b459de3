"""What the build checks need to know about a Dockerfile model: users, sources,
bases, shell commands, .dockerignore patterns. Pure functions over hardrun.spec.build.

Every regular expression is compiled once, at import.
"""
from __future__ import annotations

import re

from ...frontends.shell import SHELLS as POSIX_SHELLS
from ...spec.defaults import SENSITIVE_PORTS
from ..secrets import CURL_VALUE_SHORT, unquote

# --- instructions and stages ----------------------------------------------------------


def instructions(dockerfile):
    """Every instruction (global ARGs first, in file order), ONBUILD triggers included."""
    for instruction in dockerfile.instructions():
        yield instruction
        if instruction.trigger is not None:
            yield instruction.trigger


def final_chain_indexes(dockerfile) -> set:
    """Indexes of the final stage and the stages it builds on (`FROM <stage>`)."""
    final = dockerfile.final_stage
    return {stage.index for stage in dockerfile.stage_chain(final)} if final else set()


def external_bases(dockerfile):
    """(stage, image reference to judge) for each stage built on an image, not a stage.

    `scratch` is not an image. A base that depends on a build argument without a value
    is judged as written (`python:${PY}`), so the unknown part is never guessed at.
    """
    for stage in dockerfile.stages:
        if stage.is_stage_reference:
            continue
        base = stage.base.strip()
        if base.lower() == "scratch":
            continue
        if not stage.base_is_resolved:
            base = stage.base_raw.strip()
        if base:
            yield stage, base


# --- USER ----------------------------------------------------------------------------

def effective_user(dockerfile, stage):
    """(user, USER instruction) in effect at the end of `stage`, following FROM <stage>.

    (None, None) when no stage of the chain sets USER; (None, instruction) when the last
    USER names a variable without a value (a build argument decides it).
    """
    for member in dockerfile.stage_chain(stage):
        for instruction in reversed(member.instructions):
            if instruction.keyword == "USER":
                user = instruction.expanded.strip()
                if instruction.unresolved or not user:
                    return None, instruction
                return user, instruction
    return None, None


def is_root_user(user: str) -> bool:
    """`root`, `0`, `root:<group>`, `0:<group>`; on Windows, ContainerAdministrator."""
    name = user.split(":", 1)[0].strip()
    return name in ("root", "0") or name.lower() == "containeradministrator"


def base_runs_as_non_root(dockerfile, stage) -> bool:
    """Whether the image at the root of `stage`'s chain says it runs as non-root by its
    tag (distroless `:nonroot`, `:debug-nonroot`, chainguard-style `-nonroot`)."""
    root = list(dockerfile.stage_chain(stage))[-1]
    if root.is_stage_reference:
        return False
    reference = root.base.rsplit("/", 1)[-1].split("@", 1)[0]
    _, colon, tag = reference.partition(":")
    return bool(colon) and "nonroot" in tag.lower()


# --- HEALTHCHECK ---------------------------------------------------------------------

def effective_healthcheck(dockerfile, stage):
    """The HEALTHCHECK instruction in effect at the end of `stage` (following FROM <stage>)."""
    for member in dockerfile.stage_chain(stage):
        for instruction in reversed(member.instructions):
            if instruction.keyword == "HEALTHCHECK":
                return instruction
    return None


def is_healthcheck_none(instruction) -> bool:
    return instruction.args.strip().upper() == "NONE"


# --- COPY / ADD sources --------------------------------------------------------------

WHOLE_CONTEXT = frozenset({".", "./", "*", "./*", "./.", "/", "/*"})
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz",
                     ".tbz2", ".tb2", ".tar.zst", ".tzst", ".tar.lz", ".tar.lzma", ".tlz")
_REMOTE_PREFIXES = ("http://", "https://", "git://", "git@", "ssh://", "ftp://")


def copy_sources(instruction) -> list:
    """The sources of a COPY/ADD (heredoc sources left out), after ARG expansion."""
    sources = instruction.words[:-1]
    return [source for source in sources if not source.startswith("<<")]


def is_remote_source(source: str) -> bool:
    return source.lower().startswith(_REMOTE_PREFIXES)


def is_archive(source: str) -> bool:
    """A local tar archive (plain or compressed) that ADD unpacks: ADD has a purpose."""
    return source.lower().endswith(_ARCHIVE_SUFFIXES)


_SECRET_FILES = {
    "id_rsa": "an SSH private key", "id_dsa": "an SSH private key",
    "id_ecdsa": "an SSH private key", "id_ed25519": "an SSH private key",
    "id_ecdsa_sk": "an SSH private key", "id_ed25519_sk": "an SSH private key",
    ".env": "an environment file", ".npmrc": "npm credentials (.npmrc)",
    ".pypirc": "PyPI credentials (.pypirc)", ".netrc": "login credentials (.netrc)",
    "_netrc": "login credentials (_netrc)", ".git-credentials": "git credentials",
    "credentials": "a credentials file", "credentials.json": "a credentials file",
    ".dockercfg": "registry credentials", ".pgpass": "PostgreSQL passwords (.pgpass)",
    ".htpasswd": "a password file (.htpasswd)", ".my.cnf": "MySQL credentials (.my.cnf)",
    "secrets.json": "a secrets file", "secrets.yaml": "a secrets file",
    "secrets.yml": "a secrets file", "secrets.env": "a secrets file",
}
_SECRET_SUFFIXES = {".key": "a private key", ".p12": "a PKCS#12 key store",
                    ".pfx": "a PKCS#12 key store", ".jks": "a Java key store",
                    ".keystore": "a key store", ".ppk": "a PuTTY private key"}
# `.env.example` and friends document variables; they hold no values worth hiding.
_ENV_TEMPLATES = ("example", "sample", "template", "dist", "defaults", "default", "tmpl", "tpl")
_SECRET_DIRS = {".ssh": "an SSH directory", ".aws": "AWS credentials", ".gnupg": "a GnuPG home",
                ".docker/config.json": "registry credentials", ".kube/config": "a kubeconfig",
                ".config/gcloud": "Google Cloud credentials", ".azure": "Azure credentials"}


def secret_file_kind(source: str) -> str | None:
    """What secret `source` (a COPY/ADD source path or glob) is, or None."""
    path = source.rstrip("/")
    if "$" in path or "://" in path:
        return None
    name = path.rsplit("/", 1)[-1]
    lower = name.lower()
    for directory, kind in _SECRET_DIRS.items():
        if path == directory or path.endswith("/" + directory):
            return kind
    if lower in _SECRET_FILES:
        return _SECRET_FILES[lower]
    if lower.startswith(".env.") and lower[5:] not in _ENV_TEMPLATES:
        return "an environment file"
    if lower.endswith(".pem") and ("key" in lower or "priv" in lower):
        return "a private key"
    for suffix, kind in _SECRET_SUFFIXES.items():
        if lower.endswith(suffix) and lower != suffix:
            return kind
    return None


# --- .dockerignore -------------------------------------------------------------------

# What a protective .dockerignore must keep out of the build context.
_MUST_EXCLUDE = ((".git", (".git",)), (".env", (".env",)),
                 ("private keys (id_rsa, *.pem, *.key)", ("id_rsa", "server.pem", "server.key")))


def dockerignore_protects(patterns) -> bool:
    """Whether `.dockerignore` patterns keep .git, .env and private keys out of the context."""
    return patterns is not None and not dockerignore_gaps(patterns)


def dockerignore_gaps(patterns) -> str:
    """What of .git, .env and private keys the patterns do not exclude, as a phrase."""
    compiled = _compile_ignore(patterns or ())
    missing = [label for label, samples in _MUST_EXCLUDE
               if not all(_ignored(compiled, sample) for sample in samples)]
    return ", ".join(missing)


def _compile_ignore(patterns):
    out = []
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:].strip() if negate else pattern.strip()
        body = body.lstrip("/").rstrip("/")
        while body.startswith("./"):
            body = body[2:]
        if body:
            out.append((negate, re.compile(_ignore_regex(body))))
    return out


def _ignore_regex(pattern: str) -> str:
    """Docker's .dockerignore matching (Go filepath.Match plus `**`), as a regex."""
    out, index = [], 0
    while index < len(pattern):
        ch = pattern[index]
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            if pattern.startswith("/", index):
                out[-1] = "(?:.*/)?"
                index += 1
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", index + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                inner = pattern[index + 1:end]
                out.append("[" + ("^" + inner[1:] if inner.startswith("^") else inner) + "]")
                index = end
        elif ch == "\\" and index + 1 < len(pattern):
            index += 1
            out.append(re.escape(pattern[index]))
        else:
            out.append(re.escape(ch))
        index += 1
    # A pattern matching a directory excludes everything below it.
    return "^" + "".join(out) + "(?:/.*)?$"


def _ignored(compiled, path: str) -> bool:
    """Whether `path` (relative to the context) is excluded: the last matching pattern wins."""
    excluded = False
    for negate, regex in compiled:
        if regex.match(path):
            excluded = not negate
    return excluded


# --- shell commands ------------------------------------------------------------------

# Programs that run a script given on stdin or with -c: the POSIX shells, and fish.
SHELLS = POSIX_SHELLS | {"fish"}
_INTERPRETERS = re.compile(r"^(?:python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|php[0-9.]*)$")
DOWNLOADERS = frozenset({"curl", "wget", "fetch"})
_SUDO_VALUE_OPTIONS = frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-T", "-U",
                                 "--user", "--group", "--prompt", "--chdir"})
_WRAPPERS = frozenset({"sudo", "doas", "env", "exec", "nohup", "time", "command", "nice",
                       "busybox", "chronic", "stdbuf", "eatmydata"})


def effective_words(command) -> tuple:
    """The command's words with wrappers (`sudo -E`, `env A=1`, `busybox`, `nohup`…) removed."""
    words = tuple(command.words)
    while words:
        name = words[0].rsplit("/", 1)[-1]
        if name not in _WRAPPERS:
            break
        index = 1
        while index < len(words):
            word = words[index]
            if name == "env" and "=" in word and not word.startswith("-"):
                index += 1
            elif word.startswith("-") and name not in ("busybox", "command"):
                index += 2 if word in _SUDO_VALUE_OPTIONS or (name == "nice" and word == "-n") else 1
            else:
                break
        words = words[index:]
    return words


def _name(words) -> str:
    return words[0].rsplit("/", 1)[-1] if words else ""


def pipe_to_shell(pipeline) -> str | None:
    """`curl … | sh`-style: a downloader's output piped into a shell or an interpreter."""
    downloader = None
    for command in pipeline:
        words = effective_words(command)
        name = _name(words)
        if downloader is None:
            if name in DOWNLOADERS:
                downloader = name
            continue
        if _reads_script_from_stdin(name, words):
            via = " via sudo" if command.name in ("sudo", "doas") else ""
            return (f"{downloader} output is piped into {name}{via}: the script runs unverified; "
                    "download it, check its checksum, then run it")
    return None


def _reads_script_from_stdin(name: str, words) -> bool:
    arguments = words[1:]
    if name in SHELLS:
        return "-c" not in arguments
    if _INTERPRETERS.match(name):
        return not [word for word in arguments if not word.startswith("-")] or "-" in arguments
    return False


def shell_runs_download(pipeline) -> str | None:
    """`sh -c "$(curl …)"`, `bash <(curl …)`, `eval "$(wget -O- …)"`, `source <(curl …)`."""
    for command in pipeline:
        words = effective_words(command)
        name = _name(words)
        if name in SHELLS or name in ("eval", "source", "."):
            for word in words[1:]:
                if _SUBSTITUTION.search(word):
                    return (f"{name} runs a script fetched by a command substitution: download it, "
                            "check its checksum, then run it")
    return None


_SUBSTITUTION = re.compile(r"(?:\$\(|<\(|`)\s*(?:\S*/)?(?:curl|wget)\b")
SUBSTITUTED_DOWNLOAD = re.compile(
    r"(?:^|[\s;&|(])(?:sh|bash|zsh|dash|ksh|ash|eval|source|\.)\s+(?:-\S+\s+)*[\"']?"
    r"(?:\$\(|<\(|`)\s*(?:\S*/)?(?:curl|wget)\b")


def run_texts(instruction):
    """(line, text) pieces of a RUN to scan as text: its arguments, then each heredoc line."""
    yield instruction.line, instruction.args
    for heredoc in instruction.heredocs:
        for offset, text in enumerate(heredoc.body.split("\n")):
            yield heredoc.line + offset, text


# --- TLS and signature verification --------------------------------------------------

_PIP = re.compile(r"^pip[0-9.]*$")
_FALSE = frozenset({"false", "0", "no", "off"})
_GIT_SSL_OFF = re.compile(r"http\.(?:\S+\.)?sslverify[= ]+[\"']?(?:false|0|no|off)\b", re.I)
_APT_OPTION_OFF = re.compile(r"(?:verify-(?:peer|host)[= ]+[\"']?(?:false|0|no)"
                             r"|allow(?:unauthenticated|insecurerepositories|downgradetoinsecurerepositories)"
                             r"[= ]+[\"']?(?:true|1|yes))", re.I)
_CONDA_SSL_OFF = re.compile(r"ssl_verify\s+(?:false|no|0)\b", re.I)
_CONFIG_TEXT = (
    (re.compile(r"verify-(?:peer|host)\s+\"?(?:false|0|no)\b", re.I),
     "apt is configured not to verify the repository's TLS certificate"),
    (re.compile(r"allow(?:unauthenticated|insecurerepositories)\s+\"?(?:true|1|yes)\b", re.I),
     "apt is configured to accept unsigned repositories"),
    # A local `file:` repository built in the same step (nginx's official image) is not
    # a download whose signature goes unchecked.
    (re.compile(r"\[\s*(?:[^\]]*\s)?trusted=yes[^\]]*\]\s*(?!file:|copy:)[\"']?[a-z]+:"),
     "an apt source is marked [trusted=yes] (its signatures are not checked)"),
    (re.compile(r"(?:(?<![\w.-])|(?<=\\n))gpgcheck\s*=\s*(?:0|false|no)\b", re.I),
     "a yum/dnf repository is configured with gpgcheck=0 (package signatures are not checked)"),
    (re.compile(r"(?:(?<![\w.])|(?<=\\n))sslverify\s*=\s*(?:0|false|no|off)\b", re.I),
     "a yum/dnf/zypper repository is configured with sslverify off"),
    (re.compile(r"strict-ssl\s*=\s*false\b", re.I), "npm is configured with strict-ssl=false"),
    (re.compile(r"(?:^|\\n|\n)\s*trusted[-_]host\s*=", re.I),
     "pip is configured with a trusted-host (no TLS verification for it)"),
    (re.compile(r"\b(?:insecure|-k)\b[^\n]*>>?\s*\S*\.curlrc", re.I),
     "curl is configured with `insecure` in .curlrc"),
    (re.compile(r"check[_-]certificate\s*=\s*off", re.I),
     "wget is configured with check_certificate=off"),
)


def insecure_command(command) -> str | None:
    """Why `command` switches TLS or signature verification off, or None."""
    for name, value in command.assignments:
        reason = insecure_variable(name, value)
        if reason:
            return f"{name}={value} {reason}"
    words = effective_words(command)
    name = _name(words)
    args = words[1:]
    if name == "export":
        for word in args:
            variable, eq, value = word.partition("=")
            reason = insecure_variable(variable, value) if eq else None
            if reason:
                return f"export {variable}={value} {reason}"
        return None
    judge = _TLS_JUDGES.get(name)
    if judge is None and name.startswith("pip") and _PIP.match(name):
        judge = _pip_insecure
    if judge is None and args[:2] == ("-m", "pip") and _INTERPRETERS.match(name):
        judge, args = _pip_insecure, args[2:]
    return judge(args) if judge else None


def _curl_insecure(args) -> str | None:
    for word in _option_words(args):
        if word in ("--insecure", "--proxy-insecure", "--doh-insecure"):
            return f"curl {word} skips TLS certificate verification"
    for letters in _short_clusters(args, CURL_VALUE_SHORT):
        if "k" in letters:
            return "curl -k skips TLS certificate verification"
    return None


def _option_words(args):
    for word in args:
        if word == "--":
            return
        if word.startswith("--"):
            yield word.split("=", 1)[0]


def _short_clusters(args, value_letters):
    """The option letters of each short-option cluster, skipping option values."""
    skip = False
    for word in args:
        if skip:
            skip = False
            continue
        if word == "--":
            return
        if not word.startswith("-") or word.startswith("--") or len(word) < 2:
            continue
        letters = []
        for position, letter in enumerate(word[1:], start=1):
            letters.append(letter)
            if letter in value_letters:
                skip = position == len(word) - 1
                break
        yield "".join(letters)


def _wget_insecure(args) -> str | None:
    if "--no-check-certificate" in set(_option_words(args)):
        return "wget --no-check-certificate skips TLS certificate verification"
    return None


def _pip_insecure(args) -> str | None:
    options = set(_option_words(args))
    if "--trusted-host" in options:
        return "pip --trusted-host skips TLS verification for that host"
    if args[:2] == ("config", "set") and len(args) > 2 and args[2].endswith("trusted-host"):
        return "pip is configured with a trusted-host (no TLS verification for it)"
    return None


def _uv_insecure(args) -> str | None:
    if "--allow-insecure-host" in set(_option_words(args)):
        return "uv --allow-insecure-host skips TLS verification"
    return None


def _npm_insecure(args) -> str | None:
    if len(args) >= 4 and args[0] == "config" and args[1] == "set" \
            and args[2].lower() in ("strict-ssl", "enablestrictssl") and args[3].lower() in _FALSE:
        return f"{args[2]} false skips TLS verification of the registry"
    return None


def _git_insecure(args) -> str | None:
    if _GIT_SSL_OFF.search(" ".join(args)):
        return "git with http.sslVerify=false skips TLS verification"
    return None


def _apt_insecure(args) -> str | None:
    options = set(_option_words(args))
    for option in ("--allow-unauthenticated", "--allow-insecure-repositories", "--force-yes"):
        if option in options:
            return f"apt {option} installs packages whose signatures are not verified"
    if _APT_OPTION_OFF.search(" ".join(args)):
        return "apt is told not to verify TLS or signatures (-o …)"
    return None


def _apk_insecure(args) -> str | None:
    if "--allow-untrusted" in set(_option_words(args)):
        return "apk --allow-untrusted installs packages whose signatures are not verified"
    return None


def _rpm_family_insecure(args) -> str | None:
    options = set(_option_words(args))
    for option in ("--nogpgcheck", "--no-gpgchecks", "--no-gpg-checks", "--nosignature",
                   "--nodigest", "--allow-untrusted"):
        if option in options:
            return f"{option} installs packages whose signatures are not verified"
    return None


def _conda_insecure(args) -> str | None:
    if "--insecure" in args or "-k" in args or _CONDA_SSL_OFF.search(" ".join(args)):
        return "conda with TLS verification off"
    return None


def _composer_insecure(args) -> str | None:
    joined = " ".join(args).lower()
    if "disable-tls true" in joined or "secure-http false" in joined:
        return "composer with TLS (disable-tls / secure-http) off"
    return None


def _registry_tool_insecure(args) -> str | None:
    for word in args:
        key, eq, value = word.partition("=")
        if key in ("--tls-verify", "--src-tls-verify", "--dest-tls-verify") and eq \
                and value.lower() in _FALSE:
            return f"{word} skips registry TLS verification"
        if key == "--insecure-skip-tls-verify" and (not eq or value.lower() not in _FALSE):
            return "--insecure-skip-tls-verify skips TLS verification"
    return None


def _go_insecure(args) -> str | None:
    if "-insecure" in args:
        return "go -insecure fetches modules without TLS verification"
    return None


_TLS_JUDGES = {
    "curl": _curl_insecure, "wget": _wget_insecure, "uv": _uv_insecure,
    "npm": _npm_insecure, "yarn": _npm_insecure, "pnpm": _npm_insecure,
    "git": _git_insecure, "apt": _apt_insecure, "apt-get": _apt_insecure,
    "aptitude": _apt_insecure, "apk": _apk_insecure, "yum": _rpm_family_insecure,
    "dnf": _rpm_family_insecure, "microdnf": _rpm_family_insecure, "tdnf": _rpm_family_insecure,
    "zypper": _rpm_family_insecure, "rpm": _rpm_family_insecure, "conda": _conda_insecure,
    "mamba": _conda_insecure, "micromamba": _conda_insecure, "composer": _composer_insecure,
    "helm": _registry_tool_insecure, "kubectl": _registry_tool_insecure,
    "skopeo": _registry_tool_insecure, "podman": _registry_tool_insecure,
    "buildah": _registry_tool_insecure, "go": _go_insecure,
}


# Every _CONFIG_TEXT pattern needs one of these words: most RUN text is passed over at once.
_CONFIG_WORDS = ("verify-", "sslverify", "allowunauthenticated", "allowinsecure", "trusted",
                 "gpgcheck", "strict-ssl", "curlrc", "check_certificate", "check-certificate")


def insecure_config_text(text: str) -> str | None:
    """Why RUN text writes configuration that switches verification off, or None."""
    lowered = text.lower()
    if not any(word in lowered for word in _CONFIG_WORDS):
        return None
    for pattern, reason in _CONFIG_TEXT:
        if pattern.search(text):
            return reason
    return None


def insecure_variable(name: str, value: str | None) -> str | None:
    """Why setting environment variable `name` to `value` switches verification off."""
    if value is None:
        return None
    value = unquote(value.strip())
    lowered = value.lower()
    upper = name.upper()
    if upper == "NODE_TLS_REJECT_UNAUTHORIZED" and value == "0":
        return "turns off TLS certificate checks in Node.js"
    if upper == "GIT_SSL_NO_VERIFY":
        return "turns off TLS verification in git (any value does)"
    if upper == "PYTHONHTTPSVERIFY" and value == "0":
        return "turns off HTTPS certificate checks in Python"
    if upper in ("NPM_CONFIG_STRICT_SSL", "YARN_STRICT_SSL", "YARN_ENABLE_STRICT_SSL") \
            and lowered in _FALSE:
        return "turns off TLS verification of the package registry"
    if upper in ("PIP_TRUSTED_HOST", "UV_INSECURE_HOST") and value:
        return "turns off TLS verification for those package hosts"
    if upper == "CONDA_SSL_VERIFY" and lowered in _FALSE:
        return "turns off TLS verification in conda"
    if upper == "GOINSECURE" and value:
        return "lets Go fetch those modules without TLS verification"
    if upper == "GOSUMDB" and lowered == "off":
        return "turns off Go module checksum verification"
    if upper == "GOFLAGS" and "-insecure" in value.split():
        return "lets Go fetch modules without TLS verification"
    return None


# --- EXPOSE --------------------------------------------------------------------------

_PORT_SPEC = re.compile(r"^(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?$")


def sensitive_ports(text: str):
    """(spec as written, [(port, service)…]) for each EXPOSE item covering remote-admin ports."""
    for spec in text.split():
        match = _PORT_SPEC.match(spec)
        if not match:
            continue
        low = int(match.group(1))
        high = int(match.group(2) or low)
        protocol = (match.group(3) or "tcp").lower()
        # These services listen on TCP; RDP also on UDP.
        covered = [(port, service) for port, service in SENSITIVE_PORTS.items()
                   if low <= port <= high and (protocol == "tcp" or port == 3389)]
        if covered:
            yield spec, covered


# --- package caches ------------------------------------------------------------------

_APT = frozenset({"apt-get", "apt", "aptitude"})
_RPM_MANAGERS = frozenset({"yum", "dnf", "microdnf", "tdnf"})
_RECOMMENDS_OFF = re.compile(r"install-recommends[= ]+[\"']?(?:false|0|no)", re.I)


def cache_mount_targets(instruction) -> list:
    """Targets of the RUN's `--mount=type=cache` mounts."""
    targets = []
    for key, value in instruction.flags:
        if key != "mount" or not value:
            continue
        options = dict(part.split("=", 1) if "=" in part else (part, "")
                       for part in value.split(","))
        if options.get("type") == "cache":
            target = options.get("target") or options.get("dst") or options.get("destination")
            if target:
                targets.append(target.rstrip("/") or "/")
    return targets


def _covered(path: str, targets) -> bool:
    return any(path == target or path.startswith(target + "/") for target in targets)


def pip_cache_disabled(dockerfile, chain) -> bool:
    """Whether an ENV of the final chain sets PIP_NO_CACHE_DIR (any value turns the cache off)."""
    for index in chain:
        for instruction in dockerfile.stages[index].instructions:
            if instruction.keyword == "ENV" and any(
                    name == "PIP_NO_CACHE_DIR" for name, _ in instruction.pairs):
                return True
    return False


def package_cache_problems(instruction, pip_no_cache: bool):
    """(line, message) for each package cache or extra a RUN leaves in its layer."""
    mounts = cache_mount_targets(instruction)
    commands = [(command, effective_words(command)) for command in instruction.commands()]
    removed = [word for _, words in commands if _name(words) == "rm" for word in words[1:]]
    problems = {}

    def removes(*prefixes):
        return any(word.rstrip("/*").startswith(prefix) or word.startswith(prefix)
                   for word in removed for prefix in prefixes)

    for command, words in commands:
        name, args = _name(words), words[1:]
        if name in _APT:
            if "install" in args and "--no-install-recommends" not in args \
                    and not _RECOMMENDS_OFF.search(" ".join(args)):
                problems.setdefault("recommends", (command.line, f"{name} install without "
                                    "--no-install-recommends adds recommended packages"))
            if "update" in args and not removes("/var/lib/apt/lists") \
                    and not _covered("/var/lib/apt/lists", mounts):
                problems.setdefault("apt-lists", (command.line, f"{name} update leaves its "
                                    "package lists in the layer: end the RUN with "
                                    "`rm -rf /var/lib/apt/lists/*` (or use a cache mount)"))
        elif name == "apk" and ("add" in args or "update" in args):
            # --no-network fetches no index, so it leaves none behind.
            if "--no-cache" not in args and "--no-network" not in args and not removes("/var/cache/apk", "/etc/apk/cache") \
                    and not _covered("/var/cache/apk", mounts) and not _covered("/etc/apk/cache", mounts):
                problems.setdefault("apk", (command.line, "apk without --no-cache leaves its "
                                    "index in /var/cache/apk"))
        elif name in _RPM_MANAGERS and ("install" in args or "update" in args or "upgrade" in args):
            if not _rpm_cleaned(commands) and not removes("/var/cache/yum", "/var/cache/dnf") \
                    and not _covered("/var/cache/yum", mounts) and not _covered("/var/cache/dnf", mounts):
                problems.setdefault("rpm", (command.line, f"{name} without `{name} clean all` in "
                                    "the same RUN leaves its metadata and packages cached"))
        elif name == "zypper" and ("install" in args or "in" in args):
            if not any(_name(w) == "zypper" and ("clean" in w or "cc" in w) for _, w in commands) \
                    and not removes("/var/cache/zypp"):
                problems.setdefault("zypper", (command.line, "zypper install without "
                                    "`zypper clean -a` leaves its cache in the layer"))
        elif _pip_install(name, args) and not pip_no_cache:
            if "--no-cache-dir" not in args and not any(n == "PIP_NO_CACHE_DIR" for n, _ in
                                                        command.assignments) \
                    and not _covered("/root/.cache/pip", mounts) \
                    and not removes("/root/.cache", "~/.cache", "$HOME/.cache"):
                problems.setdefault("pip", (command.line, "pip install without --no-cache-dir "
                                    "keeps its download cache in the layer"))
    return list(problems.values())


def _rpm_cleaned(commands) -> bool:
    return any(_name(words) in _RPM_MANAGERS and "clean" in words and "all" in words
               for _, words in commands)


def _pip_install(name: str, args) -> bool:
    if _PIP.match(name):
        return bool(args) and args[0] == "install"
    if _INTERPRETERS.match(name) and name.startswith("python"):
        return args[:3] == ("-m", "pip", "install")
    return False

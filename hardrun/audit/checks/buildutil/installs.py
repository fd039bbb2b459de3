"""What a RUN's package-manager commands install, and how: the packages named without a
version, installs that would ask a question, distribution upgrades."""
from __future__ import annotations

from ....parsing.patterns import lazy

from .commands import PIP, command_name, effective_words

APT = frozenset({"apt-get", "apt", "aptitude"})
RPM = frozenset({"yum", "dnf", "microdnf", "tdnf"})

# Options that take a value as the next word, per package manager (the value is not a package).
_VALUE_OPTIONS = {
    "apt": {"-o", "-t", "-c", "--target-release", "--option", "--config-file"},
    "apk": {"-t", "--virtual", "-X", "--repository", "--arch", "-p", "--root", "--cache-dir",
            "--keys-dir", "--repositories-file"},
    "pip": {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url",
            "--extra-index-url", "-t", "--target", "--prefix", "--root", "-f", "--find-links",
            "--trusted-host", "--platform", "--python-version", "--implementation", "--abi",
            "--src", "--upgrade-strategy", "--progress-bar", "--cache-dir", "--log", "--proxy",
            "--retries", "--timeout", "--exists-action", "--cert", "--client-cert",
            "--global-option", "--install-option", "--no-binary", "--only-binary",
            "--config-settings", "-C", "--report", "--python"},
    "npm": {"--prefix", "--registry", "--cache", "-w", "--workspace", "--tag", "--userconfig",
            "--omit", "--include", "--install-strategy"},
    "gem": {"-i", "--install-dir", "-n", "--bindir", "-s", "--source", "-P", "--trust-policy",
            "--platform", "-g", "--file", "--build-root"},
    "rpm": {"--releasever", "--installroot", "--setopt", "-c", "--config", "--repo", "--enablerepo",
            "--disablerepo", "--repofrompath", "-x", "--exclude"},
    "zypper": {"-r", "--repo", "-t", "--type", "--from", "--download"},
    "go": {"-C", "-p", "-modfile", "-overlay", "-pkgdir", "-tags", "-toolexec", "-gcflags",
           "-ldflags", "-asmflags", "-gccgoflags", "-mod", "-o"},
}
_PIP_PINNED = lazy(r"(==|>=|<=|~=|!=|<|>|@|===)")
_RPM_VERSION = lazy(r"-[0-9]")
_ARCHIVE_OR_PATH = lazy(r"^(?:[./~$]|https?://|git\+|file:)|\.(?:deb|rpm|apk|whl|gem|tgz|zip)$"
                              r"|\.tar(?:\.\w+)?$")


def install_commands(instruction):
    """(manager, verb, options, packages, command) for every install of a RUN: `manager` is
    `apt`, `apk`, `pip`, `npm`, `gem`, `rpm`, `zypper` or `go`, `options` the words that
    start with `-`, `packages` the other arguments (option values removed)."""
    for command in instruction.commands():
        words = effective_words(command)
        found = _install(command_name(words), list(words[1:]))
        if found is not None:
            manager, verb, rest = found
            options, packages = _split(manager, rest)
            yield manager, verb, options, packages, command


# command -> (package manager, the verbs that install); pip is matched by pattern below
_INSTALLERS = {
    **{name: ("apt", {"install"}) for name in APT},
    "apk": ("apk", {"add"}),
    "npm": ("npm", {"install", "i", "add"}), "pnpm": ("npm", {"install", "i", "add"}),
    "yarn": ("npm", {"add"}),
    "gem": ("gem", {"install", "i"}),
    **{name: ("rpm", {"install", "groupinstall", "localinstall"}) for name in RPM},
    "zypper": ("zypper", {"install", "in"}),
    "go": ("go", {"install"}),
}


def _install(name: str, args: list):
    """(manager, verb, the arguments after the verb) when the command installs packages."""
    if PIP.match(name) or (name.startswith("python") and args[:2] == ["-m", "pip"]):
        return _after_verb("pip", args[2:] if args[:2] == ["-m", "pip"] else args, {"install"})
    manager, verbs = _INSTALLERS.get(name, (None, set()))
    return _after_verb(manager, args, verbs) if manager else None


def _after_verb(manager: str, args: list, verbs: set):
    """The first non-option word is the verb; (manager, verb, the rest) if it is one of `verbs`."""
    for index, word in enumerate(args):
        if word.startswith("-"):
            continue
        return (manager, word, [w for w in args[:index] if w.startswith("-")] + args[index + 1:]) \
            if word in verbs else None
    return None


def _split(manager: str, rest: list):
    options, packages = [], []
    takes_value = _VALUE_OPTIONS.get(manager, set())
    skip = False
    for word in rest:
        if skip:
            skip = False
            options.append(word)
        elif word.startswith("-"):
            options.append(word)
            skip = word in takes_value
        elif word:
            packages.append(word)
    return options, packages


def unpinned(manager: str, options, packages) -> list:
    """The packages of one install named without a version."""
    if manager == "gem" and any(o in ("-v", "--version") or o.startswith("--version=") for o in options):
        return []
    return [package for package in packages if not _ARCHIVE_OR_PATH.search(package)
            and "$" not in package and not _pinned(manager, package)]


def _pinned(manager: str, package: str) -> bool:
    return _PINNED.get(manager, lambda package: True)(package)


def _version_operator(package: str) -> bool:
    return "=" in package or "<" in package or ">" in package


# package manager -> whether a package word names its version
_PINNED = {
    "apt": _version_operator, "apk": _version_operator, "zypper": _version_operator,
    "pip": lambda package: bool(_PIP_PINNED.search(package)),
    "npm": lambda package: "@" in package[1:] or ":" in package,     # `@scope/name@1.2`, `git:…`, `file:…`
    "gem": lambda package: ":" in package,
    "rpm": lambda package: bool(_RPM_VERSION.search(package)) or package.startswith("@"),
    "go": lambda package: "@" in package and not package.endswith("@latest"),
}


# --- questions and upgrades ------------------------------------------------------------

_APT_YES = lazy(r"^(?:--yes|--assume-yes|-qq|-q=2|--quiet=2|-[a-zA-Z]*y[a-zA-Z]*)$")
_RPM_YES = lazy(r"^(?:--assumeyes|-[a-zA-Z]*y[a-zA-Z]*)$")
_ZYPPER_YES = frozenset({"-n", "--non-interactive", "-y", "--no-confirm"})
_APT_ASKING = frozenset({"install", "upgrade", "dist-upgrade", "full-upgrade", "remove", "purge",
                         "autoremove"})


def _rpm_answered(args) -> bool:
    return any(_RPM_YES.match(word) for word in args)


# command -> (the verbs that ask a yes/no question, whether the arguments answer it)
_QUESTIONS = {
    **{name: (_APT_ASKING, lambda args: any(_APT_YES.match(word) or word.startswith("APT::Get::Assume-Yes")
                                            for word in args))
       for name in APT},
    **{name: (frozenset({"install", "groupinstall", "localinstall", "upgrade", "update", "remove"}),
              _rpm_answered)
       for name in ("yum", "dnf", "tdnf")},
    # microdnf asks as dnf does since it took dnf's assumeyes (UBI 9's does); the older one of
    # UBI 8 never asks and accepts -y all the same, so -y is right for both
    "microdnf": (frozenset({"install", "reinstall", "upgrade", "update", "remove"}), _rpm_answered),
    "zypper": (frozenset({"install", "in", "update", "up", "remove", "rm", "patch", "dist-upgrade", "dup"}),
               lambda args: bool(_ZYPPER_YES.intersection(args))),
}


def asks(words: tuple, name: str) -> str | None:
    """The command as written when it would stop at a yes/no question (no -y / -n).
    `words`: a command's effective words, `name` its program (stages.run_commands)."""
    question = _QUESTIONS.get(name)
    if question is None:          # most commands: no installer, nothing more to read
        return None
    args = words[1:]
    verb = next((word for word in args if not word.startswith("-")), None)
    asking, answered = question
    if verb in asking and not answered(args):
        return f"{name} {verb}"
    return None


def upgrades_distribution(words: tuple, name: str) -> str | None:
    """`apt-get upgrade`, `apt-get dist-upgrade`, `zypper dist-upgrade`… as written, or None.
    `words` and `name` as for `asks`."""
    if name not in APT and name != "zypper":
        return None
    verb = next((word for word in words[1:] if not word.startswith("-")), None)
    if name in APT and verb in ("upgrade", "dist-upgrade", "full-upgrade"):
        return f"{name} {verb}"
    if name == "zypper" and verb in ("dist-upgrade", "dup"):
        return f"{name} {verb}"
    return None

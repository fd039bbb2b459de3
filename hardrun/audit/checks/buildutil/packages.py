"""Package managers' caches and extras a RUN leaves in its layer."""
from __future__ import annotations

from ....parsing.patterns import IGNORECASE, regex

from .commands import INTERPRETERS, PIP, command_name, effective_words


# --- package caches ------------------------------------------------------------------

_APT = frozenset({"apt-get", "apt", "aptitude"})
_YARN_CACHES = ("/usr/local/share/.cache/yarn", "/root/.cache/yarn", "~/.cache/yarn")
_RPM_MANAGERS = frozenset({"yum", "dnf", "microdnf", "tdnf"})
_RECOMMENDS_OFF = regex(r"install-recommends[= ]+[\"']?(?:false|0|no)", IGNORECASE)


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
    return list(package_cache_problem_kinds(instruction, pip_no_cache).values())


def package_cache_problem_kinds(instruction, pip_no_cache: bool) -> dict:
    """What package_cache_problems finds, by kind (`recommends`, `apt-lists`, `apk`, `rpm`,
    `zypper`, `pip`): the fixes of `hardrun audit --fix` need to know which it is."""
    mounts = cache_mount_targets(instruction)
    commands = [(command, effective_words(command)) for command in instruction.commands()]
    removed = [word for _, words in commands if command_name(words) == "rm" for word in words[1:]]
    problems: dict[str, tuple[int, str]] = {}

    def removes(*prefixes):
        return any(word.rstrip("/*").startswith(prefix) or word.startswith(prefix)
                   for word in removed for prefix in prefixes)

    for command, words in commands:
        name, args = command_name(words), words[1:]
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
            if "--no-cache" not in args and "--no-network" not in args \
                    and not removes("/var/cache/apk", "/etc/apk/cache") \
                    and not _covered("/var/cache/apk", mounts) and not _covered("/etc/apk/cache", mounts):
                problems.setdefault("apk", (command.line, "apk without --no-cache leaves its "
                                    "index in /var/cache/apk"))
        elif name in _RPM_MANAGERS and ("install" in args or "update" in args or "upgrade" in args):
            if not _rpm_cleaned(commands) and not removes("/var/cache/yum", "/var/cache/dnf") \
                    and not _covered("/var/cache/yum", mounts) and not _covered("/var/cache/dnf", mounts):
                problems.setdefault("rpm", (command.line, f"{name} without `{name} clean all` in "
                                    "the same RUN leaves its metadata and packages cached"))
        elif name == "zypper" and ("install" in args or "in" in args):
            if not any(command_name(w) == "zypper" and ("clean" in w or "cc" in w) for _, w in commands) \
                    and not removes("/var/cache/zypp"):
                problems.setdefault("zypper", (command.line, "zypper install without "
                                    "`zypper clean -a` leaves its cache in the layer"))
        elif name == "yarn" and ("install" in args or "add" in args):
            if not any(command_name(w) == "yarn" and "cache" in w and "clean" in w for _, w in commands) \
                    and not removes(*_YARN_CACHES) and not any(_covered(c, mounts) for c in _YARN_CACHES):
                problems.setdefault("yarn", (command.line, "yarn install without `yarn cache "
                                    "clean` in the same RUN leaves its cache in the layer"))
        elif _pip_install(name, args) and not pip_no_cache:
            if "--no-cache-dir" not in args and not any(n == "PIP_NO_CACHE_DIR" for n, _ in
                                                        command.assignments) \
                    and not _covered("/root/.cache/pip", mounts) \
                    and not removes("/root/.cache", "~/.cache", "$HOME/.cache"):
                problems.setdefault("pip", (command.line, "pip install without --no-cache-dir "
                                    "keeps its download cache in the layer"))
    return problems


def _rpm_cleaned(commands) -> bool:
    return any(command_name(words) in _RPM_MANAGERS and "clean" in words and "all" in words
               for _, words in commands)


def _pip_install(name: str, args) -> bool:
    if PIP.match(name):
        return bool(args) and args[0] == "install"
    if INTERPRETERS.match(name) and name.startswith("python"):
        return args[:3] == ("-m", "pip", "install")
    return False

"""TLS and signature verification switched off: by a command's options, by the
configuration a RUN writes, or by an environment variable."""
from __future__ import annotations

from ....parsing.patterns import IGNORECASE, lazy, regex
from ...secrets import CURL_VALUE_SHORT, unquote
from .commands import INTERPRETERS, PIP


# --- TLS and signature verification --------------------------------------------------

_FALSE = frozenset({"false", "0", "no", "off"})
_GIT_SSL_OFF = lazy(r"http\.(?:\S+\.)?sslverify[= ]+[\"']?(?:false|0|no|off)\b", IGNORECASE)
_APT_OPTION_OFF = lazy(r"(?:verify-(?:peer|host)[= ]+[\"']?(?:false|0|no)"
                             r"|allow(?:unauthenticated|insecurerepositories|downgradetoinsecurerepositories)"
                             r"[= ]+[\"']?(?:true|1|yes))", IGNORECASE)
_CONDA_SSL_OFF = lazy(r"ssl_verify\s+(?:false|no|0)\b", IGNORECASE)
_CONFIG_TEXT = (
    (regex(r"verify-(?:peer|host)\s+\"?(?:false|0|no)\b", IGNORECASE).search,
     "apt is configured not to verify the repository's TLS certificate"),
    (regex(r"allow(?:unauthenticated|insecurerepositories)\s+\"?(?:true|1|yes)\b", IGNORECASE).search,
     "apt is configured to accept unsigned repositories"),
    # A local `file:` repository built in the same step (nginx's official image) is not
    # a download whose signature goes unchecked.
    (lambda text: has_trusted_apt_source(text),
     "an apt source is marked [trusted=yes] (its signatures are not checked)"),
    (regex(r"(?:(?<![\w.-])|(?<=\\n))gpgcheck\s*=\s*(?:0|false|no)\b", IGNORECASE).search,
     "a yum/dnf repository is configured with gpgcheck=0 (package signatures are not checked)"),
    (regex(r"(?:(?<![\w.])|(?<=\\n))sslverify\s*=\s*(?:0|false|no|off)\b", IGNORECASE).search,
     "a yum/dnf/zypper repository is configured with sslverify off"),
    (regex(r"strict-ssl\s*=\s*false\b", IGNORECASE).search, "npm is configured with strict-ssl=false"),
    (lambda text: sets_trusted_host(text),
     "pip is configured with a trusted-host (no TLS verification for it)"),
    (lambda text: writes_insecure_curlrc(text),
     "curl is configured with `insecure` in .curlrc"),
    (regex(r"check[_-]certificate\s*=\s*off", IGNORECASE).search,
     "wget is configured with check_certificate=off"),
)


_SPACE = lazy(r"\s")
_TRUSTED_YES = lazy(r"trusted=yes")
_BRACKET = lazy(r"[\[\]]")
_AFTER_OPTIONS = lazy(r"\]\s*(?!file:|copy:)[\"']?[a-z]+:")


def has_trusted_apt_source(text: str) -> bool:
    r"""Whether `text` has `[… trusted=yes …] scheme:` (not file:/copy:): what
    `\[\s*(?:[^\]]*\s)?trusted=yes[^\]]*\]\s*(?!file:|copy:)["']?[a-z]+:` finds, in linear
    time (a search for it rescans the rest of a long `[[[…` or `[ trusted=yes …` from
    each bracket). A `trusted=yes` counts when it follows a blank or opens the brackets,
    an unclosed `[` comes before it, and the first `]` after it is followed by a scheme."""
    brackets = _BRACKET.finditer(text)
    last_open = last_close = -1
    upcoming = next(brackets, None)
    checked: dict[int, bool] = {}
    next_close = -1
    for option in _TRUSTED_YES.finditer(text):
        at = option.start()
        while upcoming is not None and upcoming.start() < at:
            if upcoming.group() == "[":
                last_open = upcoming.start()
            else:
                last_close = upcoming.start()
            upcoming = next(brackets, None)
        opened = last_open > last_close and (at == last_open + 1 or text[at - 1].isspace())
        if not opened:
            continue
        if next_close < at:      # the first `]` after the last one looked up is still it
            next_close = text.find("]", option.end())
        close = next_close
        if close < 0:
            return False          # no `]` after this one, nor after any later one
        if close not in checked:
            checked[close] = _AFTER_OPTIONS.match(text, close) is not None
        if checked[close]:
            return True
    return False


_TRUSTED_HOST = lazy(r"trusted[-_]host\s*=", IGNORECASE)


def sets_trusted_host(text: str) -> bool:
    r"""Whether a line of `text` sets pip's trusted-host: what
    `(?:^|\\n|\n)\s*trusted[-_]host\s*=` (case-insensitive) finds, in linear time (a search
    for it rescans a long run of newlines from each one). The blanks before trusted-host
    must start the text, hold a newline, or follow a literal backslash-n."""
    for setting in _TRUSTED_HOST.finditer(text):
        blanks = setting.start()
        while blanks > 0 and text[blanks - 1].isspace():
            blanks -= 1
        if blanks == 0 or "\n" in text[blanks:setting.start()] or text.endswith("\\n", 0, blanks):
            return True
    return False


_CURLRC = lazy(r"\.curlrc", IGNORECASE)
_INSECURE_WORD = lazy(r"\b(?:insecure|-k)\b", IGNORECASE)


def writes_insecure_curlrc(text: str) -> bool:
    r"""Whether `text` writes `insecure` into a .curlrc: what
    `\b(?:insecure|-k)\b[^\n]*>>?\s*\S*\.curlrc` (case-insensitive) finds, in linear time
    (a search for it backtracks through every `>` of a long line). A `>` qualifies when
    `insecure`/`-k` ends before it on its line and the blanks and non-blanks after it lead
    to `.curlrc`: the last `>` before `.curlrc` in its run of non-blanks, or the one just
    before the blanks in front of that run."""
    run_start = run_end = previous = -1
    in_run = before = -1
    line = [0, 0, 0]                    # the line of the last `>` looked at
    for target in _CURLRC.finditer(text):
        at = target.start()
        if at >= run_end:        # a new run of non-blanks
            run_start = at
            while run_start > 0 and not text[run_start - 1].isspace():
                run_start -= 1
            space = _SPACE.search(text, at)
            run_end = space.start() if space else len(text)
            blanks = run_start
            while blanks > 0 and text[blanks - 1].isspace():
                blanks -= 1
            before = blanks - 1 if blanks < run_start and text[blanks - 1:blanks] == ">" else -1
            in_run, previous = -1, run_start
        last = text.rfind(">", previous, at)   # only what lies since the previous .curlrc
        in_run, previous = (last if last >= 0 else in_run), at
        if any(g >= 0 and _insecure_before(text, g, line) for g in (in_run, before)):
            return True
    return False


def _insecure_before(text: str, position: int, line: list) -> bool:
    """Whether `insecure` or `-k` ends at or before `position` on its line. `line` caches
    [start, end, end of its first insecure/-k] of the line looked at last."""
    if not line[0] <= position < line[1]:
        start = text.rfind("\n", 0, position) + 1
        end = text.find("\n", position)
        end = len(text) if end < 0 else end
        word = _INSECURE_WORD.search(text, start, end)
        line[:] = [start, end, word.end() if word else end + 1]
    return line[2] <= position


def insecure_command(command, words: tuple, name: str) -> str | None:
    """Why `command` switches TLS or signature verification off, or None. `words`: its
    effective words, `name` its program (stages.run_commands)."""
    for variable, value in command.assignments:
        reason = insecure_variable(variable, value)
        if reason:
            return f"{variable}={value} {reason}"
    args = words[1:]
    if name == "export":
        for word in args:
            variable, eq, value = word.partition("=")
            reason = insecure_variable(variable, value) if eq else None
            if reason:
                return f"export {variable}={value} {reason}"
        return None
    judge = _TLS_JUDGES.get(name)
    if judge is None and name.startswith("pip") and PIP.match(name):
        judge = _pip_insecure
    if judge is None and args[:2] == ("-m", "pip") and INTERPRETERS.match(name):
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
# the words as one search: one pass over the text instead of ten
_CONFIG_WORD = lazy("|".join(_CONFIG_WORDS))   # no character of them is special in a pattern


def insecure_config_text(text: str) -> str | None:
    """Why RUN text writes configuration that switches verification off, or None."""
    if _CONFIG_WORD.search(text.lower()) is None:
        return None
    for found, reason in _CONFIG_TEXT:
        if found(text):
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

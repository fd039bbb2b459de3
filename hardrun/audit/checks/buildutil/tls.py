"""TLS and signature verification switched off: by a command's options, by the
configuration a RUN writes, or by an environment variable."""
from __future__ import annotations

import re

from ...secrets import CURL_VALUE_SHORT, unquote
from .commands import INTERPRETERS, PIP, command_name, effective_words


# --- TLS and signature verification --------------------------------------------------

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
    name = command_name(words)
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

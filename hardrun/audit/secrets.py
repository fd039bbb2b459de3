"""Judging secrets: secret-looking names, literal values, and credential literals in text
and shell commands. Shared by the build rules (ENV/ARG/RUN) and the run rules
(environment of docker run lines, compose services, Kubernetes containers).

Few false positives matter more than catching every oddity: a key *fingerprint*
(`GPG_KEY`), a path to a secret (`DB_PASSWORD_FILE`), a value taken from elsewhere
(`${TOKEN}`, `$(cat /run/secrets/x)`) are not secrets baked in.

Decision on placeholders: a default such as `changeme` or `admin` shipped in an image
IS reported. It is a default credential every container of the image shares, and
deployments that forget to override it run with it. Only template markers that no
deployment could use as they are (`<your-token>`, `{{ token }}`, `%%TOKEN%%`), empty
values, booleans and paths are not values of a secret.

Messages never repeat a secret: they name its kind, the variable or the user, and at
most the first characters of a token.
"""
from __future__ import annotations

from ..parsing.patterns import lazy

from ..spec.record import dataclass  # not dataclasses: see record.py

# --- names ------------------------------------------------------------------------

_WORD = lazy(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
# Whole words that make a name secret.
_SECRET_WORDS = frozenset({
    "password", "passwords", "passwd", "pwd", "pass", "passphrase", "secret", "secrets",
    "token", "tokens", "credential", "credentials", "creds", "apikey", "privatekey",
    "accesskey", "secretkey", "authtoken", "authkey", "pat", "htpasswd",
})
# Words that end in one of these are secret too (`PGPASSWORD`, `GITHUBTOKEN`).
_SECRET_ENDINGS = ("password", "passwd", "token", "secret", "apikey", "privatekey")
# `<qualifier>_KEY` is a secret key; a bare `KEY` or `GPG_KEY` is not.
_KEY_QUALIFIERS = frozenset({
    "api", "private", "access", "secret", "encryption", "encrypt", "crypt", "signing",
    "sign", "master", "session", "auth", "app", "license", "licence", "client", "shared",
    "hmac", "jwt", "fernet", "consumer", "webhook",
})
# A name whose last word is one of these describes a secret without holding it.
_DESCRIPTIVE_LAST = frozenset({
    "file", "files", "path", "paths", "dir", "dirs", "directory", "url", "urls", "uri",
    "host", "hostname", "port", "user", "username", "usr", "login", "name", "names",
    "length", "len", "size", "min", "max", "fingerprint", "fingerprints", "fpr", "id",
    "ids", "type", "method", "mode", "enabled", "enable", "disabled", "disable",
    "required", "require", "policy", "endpoint", "location", "header", "field", "env",
    "var", "algorithm", "algo", "format", "version", "prefix", "suffix", "expiry",
    "expires", "expiration", "ttl", "timeout", "lifetime", "count", "server", "servers",
    "provider", "keyring", "keyserver", "regex", "pattern", "command", "cmd", "script",
    "helper", "mount", "ref", "kind", "backend", "manager", "store", "vault", "arn",
    "rotation", "issuer", "audience", "scope", "scopes",
})
# Words that mark the thing as public (PUBLIC_KEY, SSH_PUB_KEY).
_PUBLIC_WORDS = frozenset({"public", "pub"})
# Shell variables that merely look like secrets.
_NOT_SECRET_NAMES = frozenset({"PWD", "OLDPWD"})


def name_words(name: str) -> list[str]:
    """`name` split into lower-case words at `_`, `-`, `.`, digits and camel case."""
    return [word.lower() for word in _WORD.findall(name)]


def is_secret_name(name: str) -> bool:
    """Whether a variable/key called `name` would hold a secret.

    Secret: PASSWORD, DB_PASS, MYSQL_PWD, PGPASSWORD, GITHUB_TOKEN, apiKey, API_KEY,
    AWS_SECRET_ACCESS_KEY, PRIVATE_KEY, CLIENT_SECRET, CREDENTIALS, BASIC_AUTH, NPM_AUTH…
    Not: *_FILE, *_PATH, *_DIR, *_URL, *_HOST, *_USER, *_NAME, *_LENGTH, *_SIZE, *_KEY_ID,
    *_FINGERPRINT, GPG_KEY(S), KEYRING, PUBLIC_KEY, AUTH_METHOD, PWD.
    """
    if name.upper() in _NOT_SECRET_NAMES:
        return False
    words = name_words(name)
    if not words or words[-1] in _DESCRIPTIVE_LAST or _PUBLIC_WORDS.intersection(words):
        return False
    for index, word in enumerate(words):
        if word in _SECRET_WORDS or (len(word) > 6 and word.endswith(_SECRET_ENDINGS)):
            return True
        if word in ("key", "keys") and index > 0 and words[index - 1] in _KEY_QUALIFIERS:
            return True
        # `auth` alone holds credentials only as the last word (NPM_AUTH, BASIC_AUTH);
        # AUTH_ENABLED and AUTH_TYPE do not.
        if word == "auth" and index == len(words) - 1:
            return True
    return False


# --- values -----------------------------------------------------------------------

_EXPANSION = lazy(r"\$\{[^}]*\}|\$\([^)]*\)|`[^`]*`|\$[A-Za-z_][A-Za-z0-9_]*|\$[0-9@*#?$!-]")
_EXPANSION_START = lazy(r"[$`]")
_TEMPLATE = lazy(r"^(?:<[^<>]+>|\{\{.*\}\}|%%[^%]+%%|@[A-Za-z_]+@)$")
_PATHLIKE = lazy(r"^(?:/|\./|~/)[\w./@+-]*$")
_NOT_VALUES = frozenset({"true", "false", "yes", "no", "on", "off", "none", "null", "nil",
                         "0", "1", "y", "n", "-"})


def is_literal(value: str) -> bool:
    """Whether `value` holds literal characters beyond variable/command expansions.

    `${TOKEN}`, `$TOKEN`, `"$USER:$PASS"`, `$(cat /run/secrets/t)` are not literals.
    """
    rest = without_expansions(value)
    return any(ch.isalnum() for ch in rest)


def without_expansions(value: str) -> str:
    """`_EXPANSION.sub("", value)` in linear time. A regex search would try every `${`
    (`$(`) and scan to the end for its `}` (`)`) each time: a run of them with no closer
    is quadratic. Past the last `}` (`)`) such a start cannot match, so it is skipped."""
    last_brace, last_paren = value.rfind("}"), value.rfind(")")
    kept, done, position = [], 0, 0
    while (start := _EXPANSION_START.search(value, position)) is not None:
        at = start.start()
        opener = value[at:at + 2]
        match = None
        if not (opener == "${" and at > last_brace or opener == "$(" and at > last_paren):
            match = _EXPANSION.match(value, at)
        if match is None:
            position = at + 1
            continue
        kept.append(value[done:at])
        done = position = match.end()
    kept.append(value[done:])
    return "".join(kept)


def is_secret_value(value: str | None) -> bool:
    """Whether `value`, given to a secret-named variable, is a secret baked in.

    Not a secret: None/empty, only expansions (`${TOKEN}`), booleans and 0/1,
    a path (`/run/secrets/db`), a template marker (`<token>`, `{{ token }}`).
    A placeholder such as `changeme` IS one (see the module docstring).
    """
    if value is None:
        return False
    text = unquote(value.strip())
    if not text or not is_literal(text):
        return False
    if text.lower() in _NOT_VALUES or _TEMPLATE.match(text) or _PATHLIKE.match(text):
        return False
    return True


def unquote(text: str) -> str:
    """`text` without one pair of matching surrounding quotes."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def redact(secret: str, keep: int = 4) -> str:
    """The first `keep` characters of a secret and an ellipsis."""
    return secret[:keep] + "…" if len(secret) > keep else "…"


# --- credential literals in text -------------------------------------------------------

@dataclass(frozen=True)
class Credential:
    """A credential found in text or a command; `description` never holds the secret."""
    kind: str          # `aws-access-key`, `private-key`, `url-userinfo`, `curl-user`…
    description: str   # `AWS access key id AKIA…`, `password for user admin in a URL`
    line_offset: int = 0   # lines after the start of the text it was found in


_TOKEN_PATTERNS = (
    ("aws-access-key", "AWS access key id",
     r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|A3T[A-Z0-9])[A-Z0-9]{16}\b"),
    ("private-key", "private key block",
     r"-----BEGIN (?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP |SSH2 )?PRIVATE KEY(?: BLOCK)?-----"),
    ("github-token", "GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("gitlab-token", "GitLab token", r"\bglpat-[A-Za-z0-9_-]{20,}"),
    ("slack-token", "Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("slack-webhook", "Slack webhook URL",
     r"https://hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+"),
    ("google-api-key", "Google API key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
    ("stripe-key", "Stripe secret key", r"\b[sr]k_live_[0-9A-Za-z]{20,}"),
    ("npm-token", "npm token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi-token", "PyPI token", r"\bpypi-AgE[A-Za-z0-9_-]{50,}"),
)
_TOKENS = lazy("|".join(f"(?P<t{i}>{pattern})" for i, (_, _, pattern) in enumerate(_TOKEN_PATTERNS)))
# scheme://user:password@host — the password part must be literal. Matched only from the
# first possible start of the scheme before each `://` (see _url_userinfo).
_URL_USERINFO = lazy(r"[A-Za-z][A-Za-z0-9+.-]*://([^\s/:@'\"]+):([^\s/@'\"]+)@[^\s/@'\"]")
_SCHEME_START = lazy(r"\b[A-Za-z]")
_SCHEME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+.-")
# .npmrc-style `:_authToken=…`, `:_auth=…`, `:_password=…`
_NPMRC = lazy(r":_(?:authToken|auth|password)\s*=\s*([^\s'\"]+)")
# Quick test before the expensive patterns: every pattern needs one of these.
_TOKEN_PREFILTER = lazy(r"A(?:KIA|SIA|GPA|IDA|ROA|IPA|NPA|NVA|3T|Iza)|PRIVATE KEY|gh[pousr]_|"
                              r"github_pat_|glpat-|xox|hooks\.slack|k_live_|npm_|pypi-")
# AWS's documentation key ids end with EXAMPLE; they are no one's credentials.
_EXAMPLE_SUFFIX = "EXAMPLE"


def find_credential_literals(text: str) -> list[Credential]:
    """Credentials written literally in `text`: cloud keys, tokens, private key blocks,
    `user:password@` in URLs (not `user@host`, not `${USER}:${PASS}@`), npmrc auth."""
    if not text:
        return []
    found = []
    if _TOKEN_PREFILTER.search(text):
        found.extend(_tokens(text))
    if "@" in text and "://" in text:
        found.extend(_url_passwords(text))
    if ":_" in text:
        found.extend(_npmrc_tokens(text))
    return found


def _tokens(text: str):
    for match in _TOKENS.finditer(text):
        index = int(match.lastgroup[1:])
        kind, label, _ = _TOKEN_PATTERNS[index]
        value = match.group()
        if kind == "aws-access-key" and value.endswith(_EXAMPLE_SUFFIX):
            continue
        shown = label if kind in ("private-key", "slack-webhook") else f"{label} {redact(value)}"
        yield Credential(kind, shown, text.count("\n", 0, match.start()))


def _url_passwords(text: str):
    for match in _url_userinfo(text):
        user, password = match.groups()
        if is_literal(password):
            yield Credential("url-userinfo", f"password for user {_shown_user(user)} in a URL",
                             text.count("\n", 0, match.start()))


def _url_userinfo(text: str):
    r"""The matches `\b` + _URL_USERINFO.finditer would give, in linear time: a regex search
    tries every start inside a long run of scheme characters (`a.a.a…`) and scans the run
    again from each, while every start in one run leads to the same `://`, so only the
    first one (the same line, the same groups) is tried."""
    pos = 0
    while (separator := text.find("://", pos)) >= 0:
        run = separator
        while run > pos and text[run - 1] in _SCHEME_CHARS:
            run -= 1
        start = _SCHEME_START.search(text, run, separator)
        match = _URL_USERINFO.match(text, start.start()) if start else None
        if match is None:
            pos = separator + 1
            continue
        yield match
        pos = match.end()


def _npmrc_tokens(text: str):
    for match in _NPMRC.finditer(text):
        if is_literal(match.group(1)):
            yield Credential("npmrc-auth", "npm registry auth token", text.count("\n", 0, match.start()))


def _shown_user(user: str) -> str:
    return user if is_literal(user) else f"{user} (a variable)"


# --- credential literals in shell commands ----------------------------------------------

# curl's short options that take a value (the rest of a cluster, or the next word).
CURL_VALUE_SHORT = frozenset("AbcCdDeEFHKmoPQrtTuUwxXyYz")
_MYSQL_CLIENTS = frozenset({"mysql", "mysqladmin", "mysqldump", "mysqlimport", "mysqlshow",
                            "mysqlcheck", "mariadb", "mariadb-admin", "mariadb-dump"})
_LOGIN_TOOLS = frozenset({"docker", "podman", "buildah", "skopeo", "nerdctl", "helm", "crane",
                          "oras"})
_PASSWORD_FEEDERS = frozenset({"echo", "printf"})


def pipeline_credentials(pipeline) -> list[Credential]:
    """Credentials given literally to the commands of one shell pipeline.

    `pipeline` is a sequence of hardrun.spec.build.Command. Covers curl -u/--user,
    wget --password/--http-password, mysql -pSECRET/--password=, htpasswd -b,
    docker/podman login -p, sshpass -p, useradd/usermod -p, echo 'u:pw' | chpasswd,
    echo pw | passwd, npm config set …:_authToken, and secret-named variables
    assigned a literal (`export TOKEN=…`, `PGPASSWORD=… psql`).
    """
    found: list[Credential] = []
    for position, command in enumerate(pipeline):
        found.extend(command_credentials(command))
        if command.name in ("chpasswd", "passwd") and position > 0:
            feeder = pipeline[position - 1]
            if feeder.name in _PASSWORD_FEEDERS and _fed_literal(feeder, command.name):
                found.append(Credential(command.name, f"literal password piped into {command.name}"))
    return found


def command_credentials(command) -> list[Credential]:
    """Credentials given literally to one shell command (see pipeline_credentials)."""
    found = [Credential("secret-variable", f"secret variable {name} set to a literal")
             for name, value in command.assignments
             if is_secret_name(name) and is_secret_value(value)]
    judge = _COMMAND_JUDGES.get(command.name)
    if judge is not None:
        described = judge(command.words[1:])
        if described:
            found.append(Credential(command.name, described))
    return found


def _fed_literal(feeder, target: str) -> bool:
    data = [word for word in feeder.words[1:] if not word.startswith("-")]
    if feeder.name == "printf" and data:
        data = data[1:] or data   # the format; `printf 'root:pw'` feeds it directly
    for word in data:
        if target == "chpasswd":
            _, colon, password = word.partition(":")
            if colon and is_literal(password):
                return True
        elif is_literal(word):
            return True
    return False


def _user_password(value: str) -> str | None:
    """`user` of a `user:password` value whose password is literal, else None."""
    user, colon, password = value.partition(":")
    if colon and password and is_literal(password):
        return user
    return None


def _curl(args) -> str | None:
    value = _option_value(args, long_names=("--user", "--proxy-user"), short="uU",
                          short_with_value=CURL_VALUE_SHORT)
    for option, given in value:
        user = _user_password(given)
        if user is not None:
            return f"curl {option} with a literal password for user {_shown_user(user)}"
    return None


def _wget(args) -> str | None:
    for option, given in _option_value(args, long_names=("--password", "--http-password",
                                                         "--ftp-password", "--proxy-password")):
        if is_literal(given):
            return f"wget {option} with a literal password"
    return None


def _mysql(args) -> str | None:
    for word in args:
        if word.startswith("--password="):
            if is_literal(word.split("=", 1)[1]):
                return "--password= with a literal password"
        elif word.startswith("-p") and not word.startswith("--") and len(word) > 2:
            # `-p` alone prompts; `-pSECRET` gives it on the command line.
            if is_literal(word[2:]):
                return "-p with a literal password"
    return None


def _htpasswd(args) -> str | None:
    batch = any(word.startswith("-") and not word.startswith("--") and "b" in word for word in args)
    positional = [word for word in args if not word.startswith("-")]
    if batch and len(positional) >= 2 and is_literal(positional[-1]):
        return "htpasswd -b with a literal password"
    return None


def _login(args) -> str | None:
    if "login" not in args:
        return None
    for option, given in _option_value(args, long_names=("--password",), short="p"):
        if is_literal(given):
            return f"registry login {option} with a literal password"
    return None


def _sshpass(args) -> str | None:
    for option, given in _option_value(args, short="p", short_with_value=frozenset("pfd")):
        if is_literal(given):
            return "sshpass -p with a literal password"
    return None


def _user_tools(args) -> str | None:
    for option, given in _option_value(args, long_names=("--password",), short="p",
                                       short_with_value=frozenset("bcdefgGkKlpPRsuZ")):
        # `*` and `!` lock the account: no password at all.
        if is_literal(given) and given not in ("*", "!", "!!", "x"):
            return f"{option} with a literal password hash"
    return None


def _package_manager_config(args) -> str | None:
    if len(args) < 3 or args[0] != "config" or args[1] != "set":
        return None
    key, eq, value = args[2].partition("=")
    if not eq:
        if len(args) < 4:
            return None
        value = args[3]
    key = key.rsplit(":", 1)[-1]
    if is_secret_name(key.lstrip("_")) and is_secret_value(value):
        return f"config set {key} to a literal"
    return None


def _option_value(args, long_names=(), short="", short_with_value=frozenset()):
    """(option, value) for each occurrence of the wanted options in `args`.

    Long options: `--name=value` or `--name value`. Short ones: `-u value`, `-uvalue`,
    or the last letter of a cluster (`-fsSu value`); in a cluster the first letter
    that takes a value (per `short_with_value`) takes the rest.
    """
    out = []
    wanted_short = set(short)
    takes_value = set(short_with_value) | wanted_short
    index = 0
    while index < len(args):
        word = args[index]
        nxt = args[index + 1] if index + 1 < len(args) else None
        if word == "--":
            break
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            if name in long_names:
                if eq:
                    out.append((name, value))
                elif nxt is not None:
                    out.append((name, nxt))
                    index += 1
        elif word.startswith("-") and len(word) > 1:
            for position in range(1, len(word)):
                letter = word[position]
                if letter not in takes_value:
                    continue
                rest = word[position + 1:]
                value = rest if rest else nxt
                if letter in wanted_short and value is not None:
                    out.append((f"-{letter}", value))
                if not rest:
                    index += 1
                break
        index += 1
    return out


_COMMAND_JUDGES = {
    "curl": _curl, "wget": _wget, "htpasswd": _htpasswd, "sshpass": _sshpass,
    "useradd": _user_tools, "usermod": _user_tools,
    "npm": _package_manager_config, "yarn": _package_manager_config,
    "pnpm": _package_manager_config,
    **{name: _mysql for name in _MYSQL_CLIENTS},
    **{name: _login for name in _LOGIN_TOOLS},
}

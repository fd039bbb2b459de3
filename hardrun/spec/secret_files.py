"""Secret files by name: which paths hold credentials or keys (SSH keys, .npmrc, .pypirc,
.netrc, .env, .aws/credentials, .docker/config.json…). One list, shared by the
Dockerfile rules (COPY/ADD sources) and the image rules (files inside an image's layers).
"""
from __future__ import annotations

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


# One endswith() each instead of a loop: the image audit asks this of every file of an image.
_DIR_ENDINGS = tuple("/" + directory for directory in _SECRET_DIRS)
_SUFFIXES = tuple(_SECRET_SUFFIXES) + (".pem",)
_STARTS = tuple({name[:3] for name in _SECRET_FILES})   # a name none starts like is none of them


# What secret_file_kind can name, by the last path component alone (lowercased): a cheap
# test that rules out almost every path of an image before the full one.
_CANDIDATE_NAMES = frozenset(_SECRET_FILES) | {directory.rsplit("/", 1)[-1] for directory in _SECRET_DIRS}
_CANDIDATE_EXTENSIONS = frozenset(_SUFFIXES)


def could_be_secret(name: str) -> bool:
    """False when secret_file_kind of any path whose last component is `name` is None
    (True does not say it is a secret: ask secret_file_kind)."""
    lower = name.lower()
    return lower in _CANDIDATE_NAMES or lower.startswith(".env.") \
        or lower[lower.rfind("."):] in _CANDIDATE_EXTENSIONS


def secret_file_kind(source: str) -> str | None:
    """What secret `source` (a COPY/ADD source path or glob, or a path in an image) is, or None."""
    path = source.rstrip("/")
    if "$" in path or "://" in path:
        return None
    name = path.rsplit("/", 1)[-1]
    lower = name.lower()
    if path in _SECRET_DIRS or path.endswith(_DIR_ENDINGS):
        for directory, kind in _SECRET_DIRS.items():
            if path == directory or path.endswith("/" + directory):
                return kind
    if not lower.startswith(_STARTS) and not lower.endswith(_SUFFIXES):
        return None
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


__all__ = ["could_be_secret", "secret_file_kind"]

"""A registry client: the Docker Registry HTTP API v2 / OCI distribution spec, enough to
pull. Anonymous pulls, bearer tokens from the `WWW-Authenticate` challenge (as Docker Hub
and GHCR ask), basic auth with the credentials of $REGISTRY_AUTH_FILE or
~/.docker/config.json, HTTPS with the system's CAs; plain HTTP only for a loopback
registry (as Docker does) or with tls_verify=False.
"""
from __future__ import annotations

import base64
import json
import os

from .manifest import (ACCEPTED, INDEXES, MANIFESTS, Descriptor, ImageError, Manifest, index_entries, load_json,
                       media_type_of, parse_manifest, select_platform, sha256_digest)
from .reference import Location
from .sources import MAX_JSON_BLOB, Source

DOCKER_HUB_API = "registry-1.docker.io"


def registry_host(registry: str) -> str:
    return DOCKER_HUB_API if registry == "docker.io" else registry


def is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry.split("]")[0] + "]"
    return host == "localhost" or host.startswith("127.") or host in ("[::1]", "::1")


def credentials(registry: str) -> tuple[str, str] | None:
    """(user, password) for `registry` from $REGISTRY_AUTH_FILE, else ~/.docker/config.json."""
    path = os.environ.get("REGISTRY_AUTH_FILE") or os.path.join(os.path.expanduser("~"), ".docker", "config.json")
    try:
        with open(path, "rb") as stream:
            auths = json.loads(stream.read()).get("auths") or {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as error:
        raise ImageError(f"{path}: cannot read the registry credentials: {error}") from None
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry == "docker.io":
        keys += ["https://index.docker.io/v1/", "index.docker.io", DOCKER_HUB_API]
    for key in keys:
        entry = auths.get(key) or auths.get(key + "/")
        if isinstance(entry, dict) and entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise ImageError(f"{path}: the auth of {key} is not base64 of USER:PASSWORD") from None
            return user, password
    return None


def parse_challenge(header: str) -> tuple[str, dict]:
    """`Bearer realm="…",service="…",scope="…"` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    while rest:
        key, _, rest = rest.strip().lstrip(",").strip().partition("=")
        if rest.startswith('"'):
            value, _, rest = rest[1:].partition('"')
        else:
            value, _, rest = rest.partition(",")
        if key:
            params[key.strip().lower()] = value
        rest = rest.lstrip(",")
    return scheme.lower(), params


class RegistrySource(Source):
    """The image a registry reference names."""

    def __init__(self, location: Location, tls_verify: bool = True):
        super().__init__(location)
        ref = location.reference
        assert ref is not None
        self.ref = ref
        host = registry_host(ref.registry)
        scheme = "http" if (is_loopback(ref.registry) or not tls_verify) else "https"
        self.base = f"{scheme}://{host}/v2/{ref.repository}"
        self._authorization: str | None = None
        self._credentials = credentials(ref.registry)

    # -- HTTP
    def _request(self, url: str, accept: str | None = None):
        import urllib.error
        import urllib.request
        for attempt in range(2):
            request = urllib.request.Request(url)
            if accept:
                request.add_header("Accept", accept)
            if self._authorization:
                request.add_header("Authorization", self._authorization)
            try:
                return urllib.request.urlopen(request, timeout=60)
            except urllib.error.HTTPError as error:
                if error.code == 401 and attempt == 0 and self._authenticate(error.headers.get("WWW-Authenticate", "")):
                    continue
                raise ImageError(f"{self.location}: {url}: HTTP {error.code} {error.reason}") from None
            except (urllib.error.URLError, OSError) as error:
                raise ImageError(f"{self.location}: cannot reach {url}: {getattr(error, 'reason', error)}") from None
        raise ImageError(f"{self.location}: {url}: the registry refused the credentials")

    def _authenticate(self, challenge: str) -> bool:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if self._credentials is None:
                raise ImageError(f"{self.location}: the registry asks for credentials (none in "
                                 "$REGISTRY_AUTH_FILE or ~/.docker/config.json)")
            self._authorization = self._basic()
            return True
        if scheme != "bearer" or "realm" not in params:
            return False
        self._authorization = "Bearer " + self._token(params)
        return True

    def _basic(self) -> str:
        assert self._credentials is not None
        return "Basic " + base64.b64encode(":".join(self._credentials).encode()).decode()

    def _token(self, params: dict) -> str:
        import urllib.error
        import urllib.parse
        import urllib.request
        query = {key: params[key] for key in ("service",) if key in params}
        query["scope"] = params.get("scope") or f"repository:{self.ref.repository}:pull"
        realm = params["realm"]
        if not realm.startswith("https://") and not (realm.startswith("http://") and self.base.startswith("http://")):
            raise ImageError(f"{self.location}: the token realm {realm} is not HTTPS")
        request = urllib.request.Request(realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query))
        if self._credentials is not None:
            request.add_header("Authorization", self._basic())
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                document = load_json(response.read(MAX_JSON_BLOB), f"token from {realm}")
        except urllib.error.HTTPError as error:
            raise ImageError(f"{self.location}: cannot get a token from {realm}: HTTP {error.code} {error.reason}") \
                from None
        except (urllib.error.URLError, OSError) as error:
            raise ImageError(f"{self.location}: cannot get a token from {realm}: {getattr(error, 'reason', error)}") \
                from None
        token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token:
            raise ImageError(f"{self.location}: {realm} gave no token")
        return token

    # -- the image
    def manifest(self) -> Manifest:
        reference = self.ref.digest or self.ref.tag or "latest"
        raw, media_type = self._manifest_bytes(reference)
        digest = sha256_digest(raw)
        if self.ref.digest and digest != self.ref.digest:
            raise ImageError(f"{self.location}: the registry sent manifest {digest}, not {self.ref.digest}")
        for _ in range(4):
            if media_type in INDEXES:
                chosen = select_platform(index_entries(raw, f"index {digest}"), f"{self.location}")
                raw, media_type = self._manifest_bytes(chosen.digest)
                digest = sha256_digest(raw)
                if digest != chosen.digest:
                    raise ImageError(f"{self.location}: manifest {chosen.digest} does not match its digest")
                continue
            if media_type not in MANIFESTS:
                raise ImageError(f"{self.location}: manifest media type {media_type} is not supported")
            return parse_manifest(raw, digest)
        raise ImageError(f"{self.location}: indexes nested too deep")

    def _manifest_bytes(self, reference: str) -> tuple[bytes, str]:
        with self._request(f"{self.base}/manifests/{reference}", ACCEPTED) as response:
            raw = response.read(MAX_JSON_BLOB + 1)
            header = (response.headers.get("Content-Type") or "").split(";")[0].strip()
        if len(raw) > MAX_JSON_BLOB:
            raise ImageError(f"{self.location}: the manifest is too large")
        return raw, media_type_of(load_json(raw, f"{self.location}: manifest"), header)

    def _open(self, digest: str):
        return self._request(f"{self.base}/blobs/{digest}")


__all__ = ["Descriptor", "RegistrySource", "credentials", "is_loopback", "parse_challenge"]

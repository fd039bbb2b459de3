"""Image references as Docker reads them: `[REGISTRY[:PORT]/]NAME[:TAG][@DIGEST]`.

The first path component is a registry when it holds a `.` or `:`, is `localhost`, or
has upper-case letters; otherwise the image is on Docker Hub (`docker.io`) and a
one-component name lives under `library/`. `parse_image` is lenient (the audit meets
references that still hold `${VARIABLES}`); `parse_reference` is what a pull accepts:
resolved, lower-case, with `latest` when neither tag nor digest is given.
"""
from __future__ import annotations

from ..errors import UsageError
from ..spec.record import dataclass

DOCKER_HUB = "docker.io"
# Names under which Docker Hub is also reached; they all mean `docker.io`.
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io",
                          "registry.hub.docker.com"})
# compiled on first use: `re` (and the `enum` it imports) stays off the start-up path of
# `hardrun run IMAGE` for the references that need neither (no digest, no variable)
_DIGEST_PATTERN = r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$"
_VARIABLE_PATTERN = r"\$(?:\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*)"
_compiled: dict = {}


def _pattern(source: str):
    if source not in _compiled:
        import re
        _compiled[source] = re.compile(source)
    return _compiled[source]

@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference, normalised the way Docker resolves it."""
    raw: str
    registry: str            # `docker.io`, `ghcr.io`, `localhost:5000`
    repository: str          # `library/alpine`, `org/app`
    tag: str | None          # None when absent
    digest: str | None       # `sha256:…` when pinned
    explicit_registry: bool  # the registry was written, not defaulted

    @property
    def name(self) -> str:
        """`registry/repository`, e.g. `docker.io/library/alpine`."""
        return f"{self.registry}/{self.repository}"

    @property
    def unresolved(self) -> bool:
        """Part of the reference is still a variable (`${TAG}`)."""
        return "$" in self.raw

    @property
    def tag_unknown(self) -> bool:
        """The tag cannot be known statically: it, or the name it could hide in, is a variable.

        `alpine:${V}` and `${IMAGE}` may carry any tag (or digest); `${REG}/alpine` may not.
        """
        if self.tag is not None:
            return "$" in self.tag
        last = self.repository.rsplit("/", 1)[-1]
        return "$" in last

    def short(self) -> str:
        """The reference as a user would write it (Docker Hub's `library/` dropped)."""
        text = self.repository
        if self.explicit_registry or self.registry != DOCKER_HUB:
            text = f"{self.registry}/{text}"
        elif text.startswith("library/"):
            text = text[len("library/"):]
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_image(ref: str) -> ImageRef:
    """Parse `ref` ([registry/]repository[:tag][@digest]); ValueError if it is not one.

    The first path component is a registry when it holds a `.` or `:`, is `localhost`,
    or has upper-case letters (Docker's rule); otherwise the image is on Docker Hub and
    one-component names live under `library/`.
    """
    text = ref.strip()
    if not text or any(ch.isspace() for ch in text):
        raise ValueError(f"not an image reference: {ref!r}")
    rest, digest = _split_digest(text)
    rest, tag = _split_tag(rest)
    if not rest or rest.startswith("/") or rest.endswith("/") or "//" in rest:
        raise ValueError(f"not an image reference: {ref!r}")
    registry, repository, explicit = _split_registry(rest)
    if registry.lower() in _HUB_ALIASES:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return ImageRef(text, registry, repository, tag, digest, explicit)


def _split_digest(text: str) -> tuple[str, str | None]:
    if "@" not in text:
        return text, None
    rest, digest = text.rsplit("@", 1)
    if "$" not in digest and not _pattern(_DIGEST_PATTERN).match(digest):
        raise ValueError(f"malformed digest in image reference: {text!r}")
    return rest, digest


def _split_tag(text: str) -> tuple[str, str | None]:
    # A tag follows the last `:` after the last `/` (a `:` before it is a registry port).
    # `${VAR:-default}` has a `:` of its own: look only outside variables.
    masked = _pattern(_VARIABLE_PATTERN).sub(lambda m: "_" * len(m.group()), text) if "$" in text else text
    slash = masked.rfind("/")
    colon = masked.rfind(":")
    if colon > slash:
        tag = text[colon + 1:]
        if not tag:
            raise ValueError(f"empty tag in image reference: {text!r}")
        return text[:colon], tag
    return text, None


def _split_registry(text: str) -> tuple[str, str, bool]:
    first, sep, remainder = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        return first, remainder, True
    return DOCKER_HUB, text, False



# Docker's grammar for the parts of a resolved reference (distribution/reference), checked
# without `re` (see _pattern)
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TAG_CHARS = _ALNUM | frozenset("_.-")
_HEX = frozenset("0123456789abcdefABCDEF")


def _is_component(part: str) -> bool:
    """[a-z0-9]+ separated by `.`, `_`, `__` or runs of `-`."""
    if not part or part[0] not in _LOWER_ALNUM or part[-1] not in _LOWER_ALNUM:
        return False
    i = 0
    while i < len(part):
        if part[i] in _LOWER_ALNUM:
            i += 1
            continue
        j = i
        while part[j] not in _LOWER_ALNUM:
            j += 1
        separator = part[i:j]
        if separator not in (".", "_", "__") and separator.strip("-"):
            return False
        i = j
    return True


def _is_tag(tag: str) -> bool:
    return 0 < len(tag) <= 128 and (tag[0] in _ALNUM or tag[0] == "_") and all(c in _TAG_CHARS for c in tag)


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _is_host(text: str) -> bool:
    """host[:port], host a DNS name (labels of letters, digits and inner `-`) or [IPv6]."""
    if text.startswith("["):
        inner, bracket, rest = text[1:].partition("]")
        return (bool(bracket) and bool(inner) and all(c in _HEX or c in ":." for c in inner)
                and (not rest or (rest[0] == ":" and _is_port(rest[1:]))))
    host, colon, port = text.partition(":")
    if colon and not _is_port(port):
        return False
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    return all(label and all(c in _ALNUM or c == "-" for c in label) and label[0] != "-" and label[-1] != "-"
               for label in labels)


def parse_reference(text: str) -> ImageRef:
    """A registry reference a pull or a run accepts: Docker's grammar, no variables, and
    the tag `latest` when neither a tag nor a digest is given. UsageError otherwise."""
    try:
        image = parse_image(text)
    except ValueError as error:
        raise UsageError(str(error)) from None
    problem = _grammar_problem(image)
    if problem:
        raise UsageError(f"invalid image reference {text!r}: {problem}")
    if image.tag is None and image.digest is None:
        image = ImageRef(image.raw, image.registry, image.repository, "latest", None,
                         image.explicit_registry)
    return image


def _grammar_problem(image: ImageRef) -> str | None:
    if "$" in image.raw:
        return "it holds an unresolved variable"
    if image.explicit_registry and not _is_host(image.registry):
        return f"{image.registry!r} is not a registry host"
    for part in image.repository.split("/"):
        if not _is_component(part):
            return f"{part!r} is not a valid name component (lower-case letters, digits, . _ -)"
    if len(image.name) > 255:
        return "the name is longer than 255 characters"
    if image.tag is not None and not _is_tag(image.tag):
        return f"{image.tag!r} is not a valid tag"
    if image.digest is not None and not (image.digest.startswith("sha256:") and len(image.digest) == 71
                                         and all(c in "0123456789abcdef" for c in image.digest[7:])):
        return "only sha256 digests (64 lower-case hex digits) are supported"
    return None


def canonical(image: ImageRef) -> str:
    """The full name a store keeps: `docker.io/library/alpine:3.19`, `…@sha256:…`."""
    text = image.name
    if image.tag is not None:
        text += f":{image.tag}"
    if image.digest is not None:
        text += f"@{image.digest}"
    return text


TRANSPORTS = ("oci", "oci-archive", "docker-archive", "docker")


@dataclass(frozen=True)
class Location:
    """Where an image comes from. transport: `docker` (a registry), `oci` (an image layout
    directory), `oci-archive` or `docker-archive` (a tar file); path: the directory or file
    (None for a registry); name: the tag, or `NAME:TAG` in a docker archive, or None;
    reference: the registry reference (transport `docker` only)."""
    transport: str
    path: str | None = None
    name: str | None = None
    reference: ImageRef | None = None

    def __str__(self) -> str:
        if self.reference is not None:
            return canonical(self.reference)
        return f"{self.transport}:{self.path}" + (f":{self.name}" if self.name else "")


def parse_location(text: str) -> Location:
    """`oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME:TAG]`,
    `docker://REF`, or a plain registry reference. The path ends at its first `:`, as
    skopeo reads it."""
    transport, colon, rest = text.partition(":")
    if colon and transport in TRANSPORTS:
        if transport == "docker":
            if not rest.startswith("//"):
                raise UsageError(f"invalid image {text!r}: the docker transport is written docker://REF")
            return Location("docker", reference=parse_reference(rest[2:]))
        path, _, name = rest.partition(":")
        if not path:
            raise UsageError(f"invalid image {text!r}: {transport}: needs a path")
        if transport != "docker-archive" and name and not _is_tag(name):
            raise UsageError(f"invalid image {text!r}: {name!r} is not a valid tag")
        if transport == "docker-archive" and name:
            parse_reference(name)     # NAME:TAG must be a reference
        return Location(transport, path, name or None)
    return Location("docker", reference=parse_reference(text))

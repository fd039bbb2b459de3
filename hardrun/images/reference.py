"""Image references as Docker reads them: `[REGISTRY[:PORT]/]NAME[:TAG][@DIGEST]`.

The first path component is a registry when it holds a `.` or `:`, is `localhost`, or
has upper-case letters; otherwise the image is on Docker Hub (`docker.io`) and a
one-component name lives under `library/`. `parse_image` is lenient (the audit meets
references that still hold `${VARIABLES}`); `parse_reference` is what a pull accepts:
resolved, lower-case, with `latest` when neither tag nor digest is given.
"""
from __future__ import annotations

import re

from ..errors import UsageError
from ..spec.record import dataclass

DOCKER_HUB = "docker.io"
# Names under which Docker Hub is also reached; they all mean `docker.io`.
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io",
                          "registry.hub.docker.com"})
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_VARIABLE = re.compile(r"\$(?:\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*)")

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
    if "$" not in digest and not _DIGEST.match(digest):
        raise ValueError(f"malformed digest in image reference: {text!r}")
    return rest, digest


def _split_tag(text: str) -> tuple[str, str | None]:
    # A tag follows the last `:` after the last `/` (a `:` before it is a registry port).
    # `${VAR:-default}` has a `:` of its own: look only outside variables.
    masked = _VARIABLE.sub(lambda m: "_" * len(m.group()), text)
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



# Docker's grammar for the parts of a resolved reference (distribution/reference)
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?)+(?::[0-9]+)?|\[[0-9A-Fa-f:.]+\](?::[0-9]+)?")


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
    if image.explicit_registry and not _HOST.fullmatch(image.registry):
        return f"{image.registry!r} is not a registry host"
    for part in image.repository.split("/"):
        if not _COMPONENT.fullmatch(part):
            return f"{part!r} is not a valid name component (lower-case letters, digits, . _ -)"
    if len(image.name) > 255:
        return "the name is longer than 255 characters"
    if image.tag is not None and not _TAG.fullmatch(image.tag):
        return f"{image.tag!r} is not a valid tag"
    if image.digest is not None and not _SHA256.fullmatch(image.digest):
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
        if transport != "docker-archive" and name and not _TAG.fullmatch(name):
            raise UsageError(f"invalid image {text!r}: {name!r} is not a valid tag")
        if transport == "docker-archive" and name:
            parse_reference(name)     # NAME:TAG must be a reference
        return Location(transport, path, name or None)
    return Location("docker", reference=parse_reference(text))

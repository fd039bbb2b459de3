"""Image references: parse them and judge them against the base-image practices.

Shared by the build rules (`FROM`) and the run rules (`docker run IMAGE`, compose
`image:`, Kubernetes `image:`). Callers decide what is not an image at all: a build
stage name, `scratch`.

A reference may still hold an unresolved variable (`python:${PY_VERSION}`,
`${REGISTRY}/app`): the part holding it is unknown, and nothing is reported about
what it could turn out to be.
"""
from __future__ import annotations

import re

from ..spec.record import dataclass  # not dataclasses: see record.py

DOCKER_HUB = "docker.io"
# Names under which Docker Hub is also reached; they all mean `docker.io`.
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io",
                          "registry.hub.docker.com"})
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_VARIABLE = re.compile(r"\$(?:\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*)")

UNTRUSTED_BASE = "untrusted-base"
UNPINNED_DIGEST = "unpinned-digest"


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


@dataclass(frozen=True)
class ImageProblem:
    """Something wrong with an image reference for one practice."""
    practice: str      # `untrusted-base` or `unpinned-digest`
    reason: str        # `no-tag`, `latest`, `untrusted-registry`, `no-digest`
    message: str


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


def judge_image(ref: str | ImageRef, trusted_registries=None) -> list[ImageProblem]:
    """What is wrong with image `ref` under `untrusted-base` and `unpinned-digest`.

    - no tag or `:latest` (unless pinned by digest, which fixes the content anyway);
    - a registry not in `trusted_registries`, when a list is given. An entry is a
      registry (`ghcr.io`, `localhost:5000`, `docker.io`) or a registry with a
      repository prefix (`ghcr.io/acme`, `docker.io/library`);
    - pinned by tag but not by digest (`unpinned-digest`).
    Unresolved variables are never guessed at: `alpine:${TAG}` has an unknown tag.
    An unparseable reference gives no problem (the caller reports parse errors).
    """
    try:
        image = ref if isinstance(ref, ImageRef) else parse_image(ref)
    except ValueError:
        return []
    problems: list[ImageProblem] = []
    shown = image.short()
    if image.digest is None and not image.tag_unknown:
        if image.tag is None:
            problems.append(ImageProblem(UNTRUSTED_BASE, "no-tag",
                                         f"image {shown} has no tag, so it means whatever "
                                         "`latest` is today: pin a version tag"))
        elif image.tag == "latest":
            problems.append(ImageProblem(UNTRUSTED_BASE, "latest",
                                         f"image {shown} uses the moving tag `latest`: pin a "
                                         "version tag"))
    if trusted_registries is not None and not is_trusted(image, trusted_registries):
        problems.append(ImageProblem(UNTRUSTED_BASE, "untrusted-registry",
                                     f"image {shown} comes from {image.registry}, which is not "
                                     "a trusted registry"))
    if image.digest is None and image.tag is not None and not image.tag_unknown:
        problems.append(ImageProblem(UNPINNED_DIGEST, "no-digest",
                                     f"image {shown} is pinned by tag only: add @sha256:… so "
                                     "the build cannot change under you"))
    return problems


def is_trusted(image: ImageRef, trusted_registries) -> bool:
    """Whether `image` comes from one of `trusted_registries` (see judge_image).

    A registry that is still a variable (`${REGISTRY}/app`) cannot be judged and passes.
    """
    first, slash, _ = image.raw.partition("/")
    # Without a slash the registry is Docker Hub's; a variable in the tag or digest
    # (`alpine:${TAG}`) does not make the registry unknown.
    if "$" in (first if slash else image.repository):
        return True
    name = image.name.lower()
    for entry in trusted_registries:
        wanted = _normalise_entry(entry)
        if name == wanted or name.startswith(wanted + "/"):
            return True
    return False


def _normalise_entry(entry: str) -> str:
    entry = entry.strip().rstrip("/").lower()
    first, sep, rest = entry.partition("/")
    if first in _HUB_ALIASES:
        first = DOCKER_HUB
    return f"{first}{sep}{rest}"

"""Image references: parse them and judge them against the base-image practices.

Shared by the build rules (`FROM`) and the run rules (`docker run IMAGE`, compose
`image:`, Kubernetes `image:`). Callers decide what is not an image at all: a build
stage name, `scratch`.

A reference may still hold an unresolved variable (`python:${PY_VERSION}`,
`${REGISTRY}/app`): the part holding it is unknown, and nothing is reported about
what it could turn out to be.
"""
from __future__ import annotations

from functools import lru_cache

from ..spec.record import dataclass  # not dataclasses: see record.py

# the reference model and parser live with the image library; re-exported for the rules
from ..images.reference import _HUB_ALIASES, DOCKER_HUB, ImageRef, parse_image

__all__ = ["DOCKER_HUB", "ImageRef", "parse_image", "judge_image", "is_trusted", "ImageProblem",
           "UNTRUSTED_BASE", "UNPINNED_DIGEST"]

UNTRUSTED_BASE = "untrusted-base"
UNPINNED_DIGEST = "unpinned-digest"


@dataclass(frozen=True)
class ImageProblem:
    """Something wrong with an image reference for one practice."""
    practice: str      # `untrusted-base` or `unpinned-digest`
    reason: str        # `no-tag`, `latest`, `untrusted-registry`, `no-digest`
    message: str


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
    if isinstance(ref, str):
        # The same few images recur across services, files and rules (three rules judge
        # each image): judged once per reference and registry list.
        trusted = None if trusted_registries is None else tuple(trusted_registries)
        return list(_judged(ref, trusted))
    return _problems(ref, trusted_registries)


@lru_cache(maxsize=4096)
def _judged(ref: str, trusted_registries: tuple[str, ...] | None) -> tuple[ImageProblem, ...]:
    try:
        image = parse_image(ref)
    except ValueError:
        return ()
    return tuple(_problems(image, trusted_registries))


def _problems(image: ImageRef, trusted_registries) -> list[ImageProblem]:
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

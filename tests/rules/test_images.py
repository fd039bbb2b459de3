"""Image references: parsing like Docker does, and judging them for the base-image practices."""
import pytest
from hypothesis import given, strategies as st

from hardrun.audit.images import ImageRef, is_trusted, judge_image, parse_image

DIGEST = "sha256:" + "0123456789abcdef" * 4


def reasons(ref, trusted=None):
    return {problem.reason for problem in judge_image(ref, trusted)}


@pytest.mark.parametrize("ref,registry,repository,tag,digest", [
    ("alpine", "docker.io", "library/alpine", None, None),
    ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
    ("bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", None),
    ("docker.io/nginx:1.27", "docker.io", "library/nginx", "1.27", None),
    ("index.docker.io/library/nginx", "docker.io", "library/nginx", None, None),
    ("ghcr.io/acme/app:v1", "ghcr.io", "acme/app", "v1", None),
    ("localhost/app", "localhost", "app", None, None),
    ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None),
    ("registry.example.com:5000/team/app", "registry.example.com:5000", "team/app", None, None),
    ("gcr.io/distroless/static-debian12:nonroot@" + DIGEST, "gcr.io", "distroless/static-debian12",
     "nonroot", DIGEST),
    ("alpine@" + DIGEST, "docker.io", "library/alpine", None, DIGEST),
])
def test_parse_image_normalises_like_docker(ref, registry, repository, tag, digest):
    image = parse_image(ref)
    assert (image.registry, image.repository, image.tag, image.digest) == (registry, repository, tag, digest)


def test_short_form_drops_docker_hub_defaults_only():
    assert parse_image("alpine:3.20").short() == "alpine:3.20"
    assert parse_image("docker.io/library/alpine").short() == "docker.io/library/alpine"
    assert parse_image("ghcr.io/a/b:1").short() == "ghcr.io/a/b:1"


@pytest.mark.parametrize("ref", ["", "  ", "a b", "alpine:", "/alpine", "alpine/", "a//b",
                                 "alpine@sha256:xyz", "alpine@"])
def test_parse_image_rejects_what_is_not_a_reference(ref):
    with pytest.raises(ValueError):
        parse_image(ref)


@given(st.text(max_size=60))
def test_parse_image_raises_only_value_error(text):
    try:
        image = parse_image(text)
    except ValueError:
        return
    assert isinstance(image, ImageRef)
    judge_image(image, ["ghcr.io"])


def test_no_tag_and_latest_are_untrusted_base():
    assert "no-tag" in reasons("ubuntu")
    assert "latest" in reasons("ubuntu:latest")
    assert "latest" in reasons("localhost:5000/app:latest")
    assert not {"no-tag", "latest"} & reasons("ubuntu:24.04")


def test_a_digest_pins_the_content_even_without_a_version_tag():
    assert reasons("ubuntu@" + DIGEST) == set()
    assert reasons("ubuntu:latest@" + DIGEST) == set()


def test_tag_without_digest_is_unpinned_digest():
    problems = judge_image("python:3.12-slim")
    assert [(p.practice, p.reason) for p in problems] == [("unpinned-digest", "no-digest")]
    assert "python:3.12-slim" in problems[0].message


def test_unresolved_variables_are_never_guessed_at():
    assert reasons("python:${PYTHON_VERSION}") == set()
    assert reasons("${BASE_IMAGE}") == set()
    assert reasons("$BASE") == set()
    assert reasons("python:${V:-3.12}-slim") == set()   # a default the caller did not resolve
    # The registry is a variable but the tag is known: judged as written.
    assert reasons("${REGISTRY}/app") == {"no-tag"}


def test_trusted_registries():
    trusted = ["ghcr.io/acme", "registry.example.com:5000", "docker.io/library"]
    assert "untrusted-registry" not in reasons("ghcr.io/acme/app:1", trusted)
    assert "untrusted-registry" in reasons("ghcr.io/evil/app:1", trusted)
    assert "untrusted-registry" in reasons("ghcr.io/acmecorp/app:1", trusted)   # prefix is per path component
    assert "untrusted-registry" not in reasons("registry.example.com:5000/x/y:1", trusted)
    assert "untrusted-registry" in reasons("alpine:${TAG}", ["ghcr.io"])        # Docker Hub, tag unknown
    assert "untrusted-registry" in reasons("alpine@${DIGEST}", ["ghcr.io"])
    assert "untrusted-registry" not in reasons("alpine:3.20", trusted)          # docker.io/library/alpine
    assert "untrusted-registry" in reasons("bitnami/redis:7", trusted)          # docker.io/bitnami
    assert "untrusted-registry" not in reasons("alpine:3.20", None)             # no list: nothing judged


def test_docker_hub_aliases_match_each_other():
    assert is_trusted(parse_image("index.docker.io/library/nginx:1"), ["docker.io"])
    assert is_trusted(parse_image("nginx:1"), ["registry-1.docker.io"])


def test_a_variable_registry_cannot_be_judged_untrusted():
    assert "untrusted-registry" not in reasons("${REGISTRY}/app:1", ["ghcr.io"])
    assert "untrusted-registry" not in reasons("${IMAGE}", ["ghcr.io"])


def test_unparseable_reference_gives_no_problem():
    assert judge_image("not an image") == []

"""Name detection matches exactly what fnmatch would, pattern by pattern."""
import fnmatch

from hypothesis import given, strategies as st

from hardrun.frontends import DOCKERFILE_NAMES, DOCKERFILE_PATTERNS, is_dockerfile_name
from hardrun.frontends.detect import COMPOSE_PATTERNS, is_compose_name

PIECES = ["Dockerfile", "Containerfile", "dockerfile", "compose", "docker-compose", ".", "-",
          "yaml", "yml", "dist", "prod", "x", "\n", "*", "[", "?"]
NAMES = st.lists(st.sampled_from(PIECES), max_size=6).map("".join) | st.text(max_size=20)


@given(NAMES)
def test_dockerfile_names(name):
    expected = name in DOCKERFILE_NAMES or any(fnmatch.fnmatchcase(name, p) for p in DOCKERFILE_PATTERNS)
    assert is_dockerfile_name(name) == expected


@given(NAMES)
def test_compose_names(name):
    assert is_compose_name(name) == any(fnmatch.fnmatchcase(name, p) for p in COMPOSE_PATTERNS)


def test_examples():
    assert is_dockerfile_name("Dockerfile.dev") and is_dockerfile_name("api.Containerfile")
    assert not is_dockerfile_name("Dockerfile\n.dev") and not is_dockerfile_name("DOCKERFILE")
    assert is_compose_name("docker-compose.override.yml") and not is_compose_name("compose.yml.bak")

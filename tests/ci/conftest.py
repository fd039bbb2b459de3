"""A local wheelhouse, so that installing hardrun the way CI tools do (pip from a
checkout) works with no network: setuptools from virtualenv's own seed wheels (the
build backend), click, PyYAML and zstandard packed from this test environment's installed files."""
import importlib.metadata
import shutil
import zipfile
from pathlib import Path

import pytest


def _pack_installed(name: str, into: Path) -> None:
    """A wheel of an installed distribution, from the files its RECORD lists."""
    dist = importlib.metadata.distribution(name)
    tag = next(line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
               if line.startswith("Tag:"))
    base = dist.metadata["Name"].replace("-", "_")
    with zipfile.ZipFile(into / f"{base}-{dist.version}-{tag}.whl", "w", zipfile.ZIP_DEFLATED) as wheel:
        for file in dist.files or ():
            if not str(file).startswith("..") and "__pycache__" not in str(file):
                wheel.write(file.locate(), str(file))


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Path:
    import virtualenv.seed.wheels.embed as embed
    into = tmp_path_factory.mktemp("wheels")
    seeds = sorted(Path(embed.__file__).parent.glob("setuptools-*.whl"))
    assert seeds, "virtualenv has no setuptools seed wheel"
    shutil.copy(seeds[-1], into)
    for name in ("click", "PyYAML", "zstandard"):
        _pack_installed(name, into)
    return into


@pytest.fixture(scope="session")
def offline_pip_env(wheelhouse) -> dict:
    """Environment variables that make pip install from the wheelhouse only."""
    import os
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse), "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


# What installing hardrun from a checkout needs, and the CI files at its top.
CHECKOUT_FILES = ("bin", "hardrun", "rules", "policies", "pyproject.toml", "README.md", "LICENSE",
                  ".pre-commit-hooks.yaml", "action.yml", "ci")


def copy_checkout(into: Path) -> Path:
    """This checkout's files as a CI tool sees them (a clone), without build leftovers,
    so that pip building it never writes into the checkout."""
    from tests.helpers import ROOT
    into.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info", "build")
    for name in CHECKOUT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=ignore)
        else:
            shutil.copy(source, into / name)
    return into

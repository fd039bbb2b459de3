"""`hardrun audit` served from its caches says byte for byte what it says without them,
over tests/data and examples/ in text, JSON and SARIF."""
import shutil

import pytest

from tests.helpers import ROOT, run_hardrun

SHELLCHECK = shutil.which("shellcheck")
TREES = ("tests/data", "examples")
FORMATS = ("text", "json", "sarif")


@pytest.fixture(scope="module")
def shellcheck_wrapper(tmp_path_factory):
    """ShellCheck behind a script that logs each start: a hit starts none."""
    assert SHELLCHECK, "shellcheck is not installed: run scripts/setup.sh --test"
    folder = tmp_path_factory.mktemp("bin")
    log = folder / "starts"
    wrapper = folder / "shellcheck"
    wrapper.write_text(f'#!/bin/sh\necho started >> {log}\nexec {SHELLCHECK} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, log


def audit(tree, fmt, cache_home, shellcheck):
    result = run_hardrun("audit", "--no-fail", "--shellcheck", str(shellcheck), "-f", fmt, tree,
                         cwd=ROOT, env={"XDG_CACHE_HOME": str(cache_home)})
    return result.returncode, result.stdout, result.stderr


def starts(log) -> int:
    """How many times ShellCheck started since the last call."""
    if not log.exists():
        return 0
    count = len(log.read_text().splitlines())
    log.unlink()
    return count


@pytest.mark.parametrize("tree", TREES)
def test_cached_audits_say_what_uncached_ones_say(tree, tmp_path, shellcheck_wrapper):
    wrapper, log = shellcheck_wrapper
    no_cache = tmp_path / "not-a-directory"
    no_cache.write_text("")                # nothing can be cached under a file
    cache_home = tmp_path / "cache"
    for fmt in FORMATS:
        uncached = audit(tree, fmt, no_cache, wrapper)
        started_uncached = starts(log)
        filling = audit(tree, fmt, cache_home, wrapper)
        started_filling = starts(log)
        served = audit(tree, fmt, cache_home, wrapper)
        assert uncached[0] in (0, 2) and uncached[1]
        assert filling == uncached
        assert served == uncached
        # control: ShellCheck judged the tree's RUNs, and the cached audit started none
        assert started_uncached > 0 and starts(log) == 0
        if fmt == FORMATS[0]:
            assert started_filling > 0
    assert list((cache_home / "hardrun").glob("shellcheck-*.json"))

"""t87s's own test suite (the sdist of the installed t87s release) with its memory adapter
replaced by cachekit_shm.t87s.CachekitAdapter on a real cachekitd.

The sdist is downloaded once with pip into target/t87s-suite/ (or $CACHEKIT_T87S_SUITE_DIR;
a temporary directory when target/ is not writable); its tests/ and pyproject.toml (for
``asyncio_mode = "auto"``) are extracted, conftest_outer.py goes next to tests/ as
conftest.py, and pytest runs the suite in a subprocess. The counts are printed and shown in
pytest's summary.

Left out, each for a reason that is not ours to pass:
- tests/adapters/test_redis.py and test_cloud.py test t87s's Redis and cloud adapters (they
  need testcontainers / respx, and never touch the memory adapter);
- test_memory.py's test_lru_eviction checks the memory adapter's own ``max_items`` LRU bound
  (cachekitd evicts by memory, not by a count).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
VERSION = "0.2.0"  # python/requirements-test.txt pins the same
IGNORED = ["tests/adapters/test_redis.py", "tests/adapters/test_cloud.py"]
DESELECTED = ["tests/adapters/test_memory.py::TestAsyncMemoryAdapter::test_lru_eviction"]
SUITE_TIMEOUT_S = 600



def _cache_root() -> Path:
    configured = os.environ.get("CACHEKIT_T87S_SUITE_DIR")
    if configured:
        return Path(configured)
    candidate = REPO / "target" / "t87s-suite"
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        probe = candidate / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return candidate
    except OSError:
        return Path(tempfile.gettempdir()) / f"cachekit-t87s-suite-{os.getuid()}"


def t87s_tests() -> Path:
    """A directory holding t87s's tests/ and pyproject.toml; downloaded and extracted once."""
    import t87s  # noqa: F401 - the suite imports the installed package: it must be there

    root = _cache_root()
    tree = root / f"t87s-{VERSION}"
    if (tree / "tests" / "test_primitives.py").is_file():
        return tree
    root.mkdir(parents=True, exist_ok=True)
    sdist = root / f"t87s-{VERSION}.tar.gz"
    if not sdist.is_file():
        download = Path(tempfile.mkdtemp(dir=root, prefix="download-"))
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                 "--disable-pip-version-check", "-d", str(download), f"t87s=={VERSION}"],
                capture_output=True, text=True, timeout=600,
            )
            if proc.returncode != 0:
                pytest.fail(f"could not download the t87s {VERSION} sdist with pip (needed for t87s's "
                            f"own tests):\n{proc.stdout}\n{proc.stderr}")
            (got,) = [p for p in download.iterdir() if p.name.endswith(".tar.gz")]
            os.replace(got, sdist)
        finally:
            shutil.rmtree(download, ignore_errors=True)
    # Extract into a fresh directory, then rename it into place: a concurrent run never sees
    # half a tree.
    staging = Path(tempfile.mkdtemp(dir=root, prefix="extract-"))
    try:
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) < 2:
                    continue
                if parts[1] == "tests" or parts[1:] == ("pyproject.toml",):
                    target = staging.joinpath(*parts[1:])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        if not (staging / "tests" / "test_primitives.py").is_file():
            pytest.fail(f"{sdist} has no tests/test_primitives.py")
        try:
            os.rename(staging, tree)
        except OSError:
            if not (tree / "tests" / "test_primitives.py").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tree


def test_t87s_own_suite_through_the_cachekit_adapter(cachekitd_socket, tmp_path):
    source = t87s_tests()
    # A copy per run, with our outer conftest: the cached tree stays as extracted.
    tree = tmp_path / "t87s"
    shutil.copytree(source, tree)
    shutil.copy(HERE / "conftest_outer.py", tree / "conftest.py")
    junit = tmp_path / "junit.xml"
    env = dict(os.environ)
    env.update(CACHEKIT_T87S_SOCKET=str(cachekitd_socket), PYTHONDONTWRITEBYTECODE="1")
    args = [sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider", "-q",
            "--rootdir", str(tree), "-c", str(tree / "pyproject.toml"), f"--junitxml={junit}"]
    args += [f"--ignore={p}" for p in IGNORED] + [f"--deselect={d}" for d in DESELECTED]
    proc = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True, timeout=SUITE_TIMEOUT_S)
    if not junit.is_file():
        pytest.fail(f"t87s's suite wrote no report (exit {proc.returncode}):\n{proc.stdout[-5000:]}\n"
                    f"{proc.stderr[-5000:]}")
    suite = ET.parse(junit).getroot()
    if suite.tag == "testsuites":
        suite = suite[0]
    tests, failures, errors, skipped = (int(suite.get(a, 0)) for a in ("tests", "failures", "errors", "skipped"))
    line = (f"t87s {VERSION}'s own suite through CachekitAdapter: {tests} run, "
            f"{tests - failures - errors - skipped} passed, {failures} failed, {errors} errors, {skipped} skipped "
            f"({len(DESELECTED)} deselected: the memory adapter's max_items LRU; not run: the Redis and "
            f"cloud adapters' own tests)")
    print("\n" + line)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-3000:]
    assert failures == errors == skipped == 0, proc.stdout[-8000:]
    # Every test of the suite ran (a mistake that hid the suite would show as a handful).
    assert tests >= 70, line

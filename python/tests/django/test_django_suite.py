"""Django's own cache tests (BaseCacheTests of the installed Django's release) against
cachekit_shm.django.CachekitCache and a real cachekitd.

The sdist of the installed Django version is downloaded once with pip into
target/django-suite/ (or $CACHEKIT_DJANGO_SUITE_DIR; a temporary directory when target/ is
not writable), its tests/cache/ extracted as the package ``cache``, and Django's test runner
runs django_cachekit_suite.CachekitCacheTests in a subprocess (Django's settings are process
global). The counts are printed and shown in pytest's summary.

The only tests allowed to skip are the culling ones (see django_cachekit_suite.py for why).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

import cachekit_shm
import django
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

# Skipped by Django's suite itself once the cull aliases are excluded: "Culling isn't
# implemented." (cachekitd evicts FIFO-second-chance by segment, not by MAX_ENTRIES).
EXPECTED_SKIPS = {
    "django_cachekit_suite.CachekitCacheTests.test_cull",
    "django_cachekit_suite.CachekitCacheTests.test_zero_cull",
    "django_cachekit_suite.CachekitCacheTests.test_cull_delete_when_store_empty",
}
SUITE_TIMEOUT_S = 900  # a watchdog, not a speed check: the suite sleeps ~20 s in expiry tests


def _cache_root() -> Path:
    configured = os.environ.get("CACHEKIT_DJANGO_SUITE_DIR")
    if configured:
        return Path(configured)
    candidate = REPO / "target" / "django-suite"
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        probe = candidate / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return candidate
    except OSError:
        return Path(tempfile.gettempdir()) / f"cachekit-django-suite-{os.getuid()}"


def django_cache_tests() -> Path:
    """A directory holding the package ``cache`` (Django's tests/cache) of the installed
    Django version; downloaded and extracted on first use."""
    version = django.get_version()
    root = _cache_root()
    tree = root / f"django-{version}"
    if (tree / "cache" / "tests.py").is_file():
        return tree
    root.mkdir(parents=True, exist_ok=True)
    sdist = root / f"django-{version}.tar.gz"
    if not sdist.is_file():
        download = Path(tempfile.mkdtemp(dir=root, prefix="download-"))
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                 "--disable-pip-version-check", "-d", str(download), f"django=={version}"],
                capture_output=True, text=True, timeout=600,
            )
            if proc.returncode != 0:
                pytest.fail(
                    f"could not download the Django {version} sdist with pip (needed for "
                    f"Django's cache tests):\n{proc.stdout}\n{proc.stderr}"
                )
            (got,) = [p for p in download.iterdir() if p.name.endswith(".tar.gz")]
            os.replace(got, sdist)
        finally:
            shutil.rmtree(download, ignore_errors=True)
    # Extract tests/cache/ into a fresh directory, then rename it into place, so a
    # concurrent run never sees half a package.
    staging = Path(tempfile.mkdtemp(dir=root, prefix="extract-"))
    try:
        with tarfile.open(sdist) as tar:
            prefix = None
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if len(parts) >= 4 and parts[1:3] == ("tests", "cache") and member.isfile():
                    prefix = parts[0]
                    target = staging / "cache" / Path(*parts[3:])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
            if prefix is None:
                pytest.fail(f"{sdist} has no tests/cache/")
        try:
            os.rename(staging, tree)
        except OSError:
            if not (tree / "cache" / "tests.py").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tree


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_django_base_cache_tests(cachekitd_socket, tmp_path, django_suite_report, encrypted):
    tests_dir = django_cache_tests()
    result_file = tmp_path / "result.json"
    package_parent = Path(cachekit_shm.__file__).resolve().parent.parent
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="django_suite_settings",
        PYTHONPATH=os.pathsep.join(
            [str(tests_dir), str(HERE), str(package_parent)]
            + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        ),
        CACHEKIT_DJANGO_SOCKET=str(cachekitd_socket),
        CACHEKIT_DJANGO_NAMESPACE=f"django-suite-{uuid.uuid4().hex[:12]}",
        CACHEKIT_DJANGO_RESULT=str(result_file),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("CACHEKIT_DJANGO_ENCRYPTION_KEY", None)
    if encrypted:  # every cache of the suite with OPTIONS ENCRYPTION_KEY
        env["CACHEKIT_DJANGO_ENCRYPTION_KEY"] = os.urandom(32).hex()
    proc = subprocess.run(
        [sys.executable, "-m", "django", "test", "--noinput", "-v", "2",
         "django_cachekit_suite"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SUITE_TIMEOUT_S,
    )
    if not result_file.is_file():
        pytest.fail(
            f"Django's test runner wrote no result (exit {proc.returncode}):\n"
            f"{proc.stdout[-5000:]}\n{proc.stderr[-10000:]}"
        )
    summary = json.loads(result_file.read_text())
    skipped = summary["skipped"]
    line = (
        f"Django {django.get_version()} BaseCacheTests on CachekitCache"
        f"{' with ENCRYPTION_KEY' if encrypted else ''}: "
        f"ran {summary['ran']}, passed {summary['passed']}, skipped {len(skipped)}, "
        f"failed {len(summary['failed'])}, errors {len(summary['errors'])} "
        f"(excluded aliases cull, zero_cull: cachekitd evicts by segment, "
        f"not by MAX_ENTRIES/CULL_FREQUENCY)"
    )
    print(line)
    django_suite_report.append(line)
    assert not summary["failed"] and not summary["errors"], (
        "\n\n".join(summary["details"]) + "\n" + proc.stderr[-5000:]
    )
    assert not summary["unexpected_successes"]
    assert set(skipped) == EXPECTED_SKIPS, skipped
    assert proc.returncode == 0, proc.stderr[-5000:]
    # Every BaseCacheTests method ran (55 in Django 5.2); a mistake that hid the suite
    # would show here as a handful of tests.
    assert summary["passed"] >= 50, summary

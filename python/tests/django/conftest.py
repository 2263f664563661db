"""Fixtures of the Django backend's tests. The daemon (``cachekitd_socket``) comes from
python/tests/conftest.py."""

from __future__ import annotations

import uuid

import pytest

_SUITE_REPORT: list[str] = []


@pytest.fixture(scope="session")
def django_suite_report() -> list[str]:
    """Lines shown in pytest's terminal summary (the Django suite's counts)."""
    return _SUITE_REPORT


def pytest_terminal_summary(terminalreporter):
    if _SUITE_REPORT:
        terminalreporter.write_sep("-", "Django's cache tests")
        for line in _SUITE_REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def django_configured():
    """Minimal Django settings for tests that build CachekitCache objects directly."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(USE_TZ=True, SECRET_KEY="cachekit-tests")
        django.setup()


@pytest.fixture
def make_cache(cachekitd_socket, django_configured):
    """``make_cache(**params)``: a CachekitCache on the test daemon, in a fresh namespace
    unless params name one; every namespace used is cleared afterwards."""
    from cachekit_shm.django import CachekitCache

    made = []

    def make(location=None, **params):
        options = params.setdefault("OPTIONS", {})
        options.setdefault("namespace", f"dj-{uuid.uuid4().hex[:12]}")
        cache = CachekitCache(str(cachekitd_socket) if location is None else location, params)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        try:
            cache.clear()
        except Exception:
            pass


@pytest.fixture
def cache(make_cache):
    return make_cache()

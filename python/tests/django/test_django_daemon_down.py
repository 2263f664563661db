"""CachekitCache while cachekitd is down: gets miss whatever the order of events (the process
used the cache first before or after the daemon went down), writes raise UnavailableError,
and a process that found the daemon gone does not serve the values its failed writes meant
to remove."""

from __future__ import annotations

import asyncio
import logging
import pickle
import uuid

import pytest

from cachekit_shm.errors import UnavailableError

from _helpers import wait_until


def _cache(socket: str):
    from cachekit_shm.django import CachekitCache

    return CachekitCache(socket, {"OPTIONS": {"namespace": f"dj-{uuid.uuid4().hex[:12]}"}})


def _set_ok(cache, key, value) -> bool:
    try:
        cache.set(key, value)
        return True
    except UnavailableError:
        return False


def test_first_used_while_the_daemon_is_down_gets_miss_then_it_works(make_daemon, django_configured):
    d = make_daemon()
    d.stop()
    cache = _cache(d.socket)  # as in a worker that starts while cachekitd restarts

    # Every read is a miss, never an exception (a 500 for every request of the worker).
    assert cache.get("k", "default") == "default"
    assert cache.get_many(["k", "j"]) == {}
    assert cache.has_key("k") is False
    assert asyncio.run(cache.aget("k", "default")) == "default"
    # Writes say the daemon is down.
    with pytest.raises(UnavailableError, match="start it with"):
        cache.set("k", 1)
    with pytest.raises(UnavailableError):
        cache.delete("k")

    d.start()
    wait_until(lambda: _set_ok(cache, "k", 1), what="the cache to reach the daemon that came up")
    assert cache.get("k") == 1


def test_a_failed_delete_is_not_followed_by_the_old_value(make_daemon, django_configured):
    # A heartbeat that looks alive for 5 s after a kill: what stops the reads is the process
    # having found the daemon gone, not the heartbeat going stale.
    d = make_daemon("--heartbeat-ms", "100", "--heartbeat-timeout-ms", "5000")
    cache = _cache(d.socket)
    cache.set("k", "old")
    cache.set_tagged("t", "old", tags=("posts/1",))
    assert cache.get("k") == "old" and cache.get("t") == "old"

    d.kill()
    with pytest.raises(UnavailableError):
        cache.delete("k")
    assert cache.get("k", "gone") == "gone"
    with pytest.raises(UnavailableError):
        cache.invalidate_tags("posts")
    assert cache.get("t", "gone") == "gone"
    assert asyncio.run(cache.aget("k", "gone")) == "gone"


def _ignoring(socket: str, **extra):
    from cachekit_shm.django import CachekitCache

    options = {"namespace": f"dj-{uuid.uuid4().hex[:12]}", "IGNORE_EXCEPTIONS": True, **extra}
    return CachekitCache(socket, {"OPTIONS": options})


def test_ignore_exceptions_turns_calls_during_an_outage_into_logged_no_ops(make_daemon, django_configured, caplog):
    """OPTIONS IGNORE_EXCEPTIONS (django-redis's option): the daemon is stopped in the middle
    of the test; every call returns Django's "not there" / "not done" and logs a warning on
    cachekit_shm.django; once the daemon is back, the same cache object works again."""
    d = make_daemon()
    cache = _ignoring(d.socket)
    assert cache.set("k", "v") is None  # Django's set returns None when it works
    assert cache.get("k") == "v"

    d.stop()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cachekit_shm.django"):
        assert cache.set("k", "new") is False
        assert cache.add("a", 1) is False
        assert cache.delete("k") is False
        assert cache.touch("k", 30) is False
        assert cache.set_many({"x": 1, "y": 2}) == ["x", "y"]
        assert cache.delete_many(["x", "y"]) is None
        assert cache.incr("n") is None
        assert cache.clear() is False
        assert cache.get("k", "default") == "default"
        assert cache.get_or_set("g", lambda: "computed") == "computed"
        assert cache.expire("k", 10) is False and cache.persist("k") is False
        assert asyncio.run(cache.aset("k", "new")) is False
        assert asyncio.run(cache.adelete("k")) is False
        assert asyncio.run(cache.aget("k", "default")) == "default"
    ignored = [r for r in caplog.records if r.name == "cachekit_shm.django"]
    assert any("cache set ignored (IGNORE_EXCEPTIONS)" in r.getMessage() for r in ignored), ignored
    assert any("cache aset ignored" in r.getMessage() for r in ignored), ignored
    assert all(r.levelno == logging.WARNING for r in ignored)
    # What retrying cannot fix still raises: a value that does not pickle.
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        cache.set("k", lambda: None)

    d.start()
    wait_until(lambda: cache.set("k", "back") is None, what="the cache to reach the restarted daemon")
    assert cache.get("k") == "back"
    assert cache.add("a", 1) is True


def test_ignore_exceptions_is_off_by_default(make_daemon, django_configured):
    d = make_daemon()
    cache = _cache(d.socket)
    d.stop()
    with pytest.raises(UnavailableError):
        cache.set("k", 1)
    with pytest.raises(UnavailableError):
        asyncio.run(cache.aset("k", 1))

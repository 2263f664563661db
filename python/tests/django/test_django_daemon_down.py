"""CachekitCache while cachekitd is down: gets miss whatever the order of events (the process
used the cache first before or after the daemon went down), writes raise UnavailableError,
and a process that found the daemon gone does not serve the values its failed writes meant
to remove."""

from __future__ import annotations

import asyncio
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

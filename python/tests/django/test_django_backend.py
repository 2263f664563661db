"""CachekitCache beyond Django's own suite: configuration, tags, what read-modify-write
operations keep (TTL, tags), limits, namespaces, and several processes sharing one cache."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from cachekit_shm.errors import TooLargeError

WATCHDOG_S = 60


def _expires_ms(cache, key, version=None):
    hit = cache._client.get_with_info(cache._key(key, version))
    assert hit is not None, key
    return hit[1].expires_ms


# -- configuration ------------------------------------------------------------------------


def test_location_is_a_socket_path_or_an_instance(django_configured):
    from cachekit_shm.django import CachekitCache

    by_path = dict(CachekitCache("/run/cachekit/web.sock", {})._config)
    assert by_path["socket"] == "/run/cachekit/web.sock" and "instance" not in by_path
    by_name = dict(CachekitCache("web", {})._config)
    assert by_name["instance"] == "web" and "socket" not in by_name
    default = dict(CachekitCache("", {})._config)
    assert "socket" not in default and "instance" not in default
    assert default["namespace"] == "django"


def test_options_are_passed_and_unknown_ones_refused(django_configured):
    from cachekit_shm.django import CachekitCache

    config = dict(
        CachekitCache(
            "web",
            {"OPTIONS": {"namespace": "shop", "connect_timeout": 0.5, "request_timeout": 2,
                         "redis_url": "redis://127.0.0.1:6379", "MAX_ENTRIES": 10}},
        )._config
    )
    assert config == {"instance": "web", "namespace": "shop", "connect_timeout": 0.5,
                      "request_timeout": 2, "redis_url": "redis://127.0.0.1:6379"}
    with pytest.raises(ImproperlyConfigured, match="unknown OPTIONS"):
        CachekitCache("web", {"OPTIONS": {"namespce": "typo"}})
    with pytest.raises(ImproperlyConfigured, match="pickle_protocol"):
        CachekitCache("web", {"OPTIONS": {"pickle_protocol": 1}})


def test_one_client_per_process_and_configuration(make_cache):
    a, b = make_cache(OPTIONS={"namespace": "dj-shared"}), make_cache(OPTIONS={"namespace": "dj-shared"})
    assert a._client is b._client
    assert make_cache()._client is not a._client


def test_close_keeps_the_cache_usable(cache):
    # Django calls close() at the end of every request, then uses the cache again.
    cache.set("k", 1)
    cache.close()
    assert cache.get("k") == 1
    cache.set("k", 2)
    assert cache.get("k") == 2


# -- tags -----------------------------------------------------------------------------------


def test_invalidate_tags_drops_tagged_entries_and_those_below(cache):
    cache.set_tagged("post", "p", tags=["posts/42"])
    cache.set_tagged("comments", "c", tags=["posts/42/comments"])
    cache.set_tagged("other", "o", tags=["posts/421"])
    cache.set("plain", "x")
    cache.invalidate_tags("posts/42")
    assert cache.get_many(["post", "comments", "other", "plain"]) == {"other": "o", "plain": "x"}


def test_invalidate_tags_exact(cache):
    cache.set_tagged("post", "p", tags=["posts/42"])
    cache.set_tagged("comments", "c", tags=["posts/42/comments"])
    cache.invalidate_tags("posts/42", exact=True)
    assert cache.get("post") is None
    assert cache.get("comments") == "c"


def test_set_tagged_follows_django_timeouts(cache):
    cache.set_tagged("gone", 1, timeout=0, tags=["t"])
    assert not cache.has_key("gone")
    cache.set_tagged("forever", 1, timeout=None, tags=["t"])
    assert _expires_ms(cache, "forever") == 0
    cache.set_tagged("default", 1, tags=["t"])
    assert _expires_ms(cache, "default") > (time.time() + 250) * 1000


def test_touch_incr_and_incr_version_keep_tags(cache):
    cache.set_tagged("touched", "v", timeout=100, tags=["t/1"])
    cache.set_tagged("counter", 1, timeout=100, tags=["t/2"])
    cache.set_tagged("versioned", "v", timeout=100, tags=["t/3"])
    assert cache.touch("touched", 200)
    assert cache.incr("counter") == 2
    assert cache.incr_version("versioned") == 2
    cache.invalidate_tags("t")
    assert not cache.has_key("touched")
    assert not cache.has_key("counter")
    assert not cache.has_key("versioned", version=2)


# -- what read-modify-write keeps ---------------------------------------------------------


def test_incr_keeps_the_remaining_ttl(cache):
    # BaseCache.incr would reset it to the default timeout (300 s); LocMem and Redis keep it.
    cache.set("n", 1, timeout=100)
    before = _expires_ms(cache, "n")
    assert cache.incr("n", 5) == 6
    assert cache.decr("n") == 5
    assert abs(_expires_ms(cache, "n") - before) < 1000
    cache.set("forever", 1, timeout=None)
    cache.incr("forever")
    assert _expires_ms(cache, "forever") == 0


def test_incr_version_keeps_the_remaining_ttl(cache):
    cache.set("k", "v", timeout=100)
    before = _expires_ms(cache, "k")
    assert cache.incr_version("k") == 2
    assert abs(_expires_ms(cache, "k", version=2) - before) < 1000
    assert cache.decr_version("k", version=2) == 1
    assert cache.get("k") == "v"


def test_touch_sets_a_new_ttl(cache):
    cache.set("k", "v", timeout=1)
    assert cache.touch("k", None)
    assert _expires_ms(cache, "k") == 0
    assert cache.touch("k", 1000)
    assert _expires_ms(cache, "k") > (time.time() + 900) * 1000
    assert cache.touch("k", -1)  # expired now: gone
    assert not cache.has_key("k")
    assert not cache.touch("k", 10)


def test_timeouts_keep_djangos_contract_not_the_bindings_ttl_rule(cache):
    """The one exception to "a TTL of 0 never expires" (README, "One meaning per setting"):
    Django's own contract, which its test suite checks: None never expires, 0 or negative
    stores nothing (set, add, set_many) or deletes (touch, expire)."""
    for timeout in (0, -1):
        cache.set("k", "v", timeout=timeout)
        assert not cache.has_key("k"), timeout
        assert cache.add("a", "v", timeout=timeout) is True  # "would have stored"
        assert not cache.has_key("a"), timeout
        assert cache.set_many({"m": 1}, timeout=timeout) == []
        assert not cache.has_key("m"), timeout
        cache.set("t", "v", timeout=100)
        assert cache.touch("t", timeout) is True
        assert not cache.has_key("t"), timeout
        cache.set("e", "v", timeout=100)
        assert cache.expire("e", timeout) is True
        assert not cache.has_key("e"), timeout
    cache.set("forever", "v", timeout=None)
    assert _expires_ms(cache, "forever") == 0 and cache.ttl("forever") is None


def test_incr_on_a_non_number_raises_and_keeps_the_value(cache):
    cache.set("s", "text")
    with pytest.raises(TypeError):
        cache.incr("s")
    assert cache.get("s") == "text"


# -- limits, values, namespaces ----------------------------------------------------------------


def test_a_value_over_the_limit_raises_and_leaves_no_older_value(cache):
    cache.set("big", "small")
    with pytest.raises(TooLargeError):
        cache.set("big", os.urandom(2 << 20))  # the test daemon takes 1 MiB
    assert cache.get("big") is None
    cache.set("ok", "fine")
    assert cache.set_many({"ok": "fine", "huge": os.urandom(2 << 20)}) == ["huge"]
    assert cache.get_many(["ok", "huge"]) == {"ok": "fine"}


def test_values_are_pickled_with_the_configured_protocol(make_cache):
    cache = make_cache(OPTIONS={"pickle_protocol": 2})
    cache.set("k", {"a": [1, 2]})
    raw = cache._client.get_raw(cache._key("k", None))
    assert raw[:2] == b"\x80\x02" and pickle.loads(raw) == {"a": [1, 2]}


def test_clear_drops_this_namespace_only(make_cache):
    a = make_cache()
    b = make_cache()
    prefixed = make_cache(KEY_PREFIX="other", OPTIONS={"namespace": dict(a._config)["namespace"]})
    a.set("k", "a")
    b.set("k", "b")
    prefixed.set("k", "p")
    a.clear()
    assert a.get("k") is None and prefixed.get("k") is None  # same namespace
    assert b.get("k") == "b"


def test_none_and_falsy_values_are_hits(cache):
    cache.set_many({"none": None, "zero": 0, "empty": b""})
    assert cache.get_many(["none", "zero", "empty", "missing"]) == {"none": None, "zero": 0, "empty": b""}
    assert cache.has_key("none")
    assert cache.get("none", "default") is None


# -- several processes ---------------------------------------------------------------------


def _worker(socket, namespace, queue):
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(USE_TZ=True)
        django.setup()
    from cachekit_shm.django import CachekitCache

    cache = CachekitCache(socket, {"OPTIONS": {"namespace": namespace}})
    seen = cache.get("from-parent")
    cache.set("from-child", {"pid": os.getpid()})
    cache.set_tagged("child-tagged", 1, tags=["child"])
    queue.put(seen)


@pytest.mark.parametrize("start_method", ["spawn", "fork"])
def test_processes_share_one_cache(cache, cachekitd_socket, start_method):
    cache.set("from-parent", [1, 2, 3])  # under fork: the parent's client exists before
    ctx = multiprocessing.get_context(start_method)
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_worker, args=(str(cachekitd_socket), dict(cache._config)["namespace"], queue)
    )
    proc.start()
    try:
        assert queue.get(timeout=WATCHDOG_S) == [1, 2, 3]
        proc.join(WATCHDOG_S)
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()
    assert cache.get("from-child") == {"pid": proc.pid}
    # A hit is read from the shared segment, not fetched from the daemon.
    hit = cache._client.get_with_info(cache._key("from-child", None))
    assert hit is not None and hit[1].source == "segment"
    cache.invalidate_tags("child")
    assert not cache.has_key("child-tagged")

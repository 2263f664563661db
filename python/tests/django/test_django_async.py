"""The async API of CachekitCache (Django's suite has no async tests for real backends):
every ``a*`` method, Django's timeout and key-warning semantics on the async path, values
shared with the sync API, and many coroutines at once."""

from __future__ import annotations

import asyncio
import pickle

import pytest
from django.core.cache import CacheKeyWarning

from cachekit_shm.errors import TooLargeError


async def test_aset_aget_adelete(cache):
    assert await cache.aget("k") is None
    assert await cache.aget("k", "default") == "default"
    await cache.aset("k", {"a": [1, 2]})
    assert await cache.aget("k") == {"a": [1, 2]}
    assert cache.get("k") == {"a": [1, 2]}  # the same entry for the sync API
    assert await cache.adelete("k") is True
    assert await cache.adelete("k") is False
    assert await cache.aget("k") is None


async def test_none_is_a_value(cache):
    await cache.aset("none", None)
    assert await cache.aget("none", "default") is None
    assert await cache.ahas_key("none") is True


async def test_aadd_only_when_absent(cache):
    assert await cache.aadd("k", 1) is True
    assert await cache.aadd("k", 2) is False
    assert await cache.aget("k") == 1
    assert await cache.aadd("zero", 1, timeout=0) is True  # Django: "added", expired at once
    assert await cache.ahas_key("zero") is False
    with pytest.raises(pickle.PickleError):
        await cache.aadd("unpicklable", _Unpicklable())


async def test_timeouts(cache):
    await cache.aset("zero", 1, timeout=0)
    await cache.aset("negative", 1, timeout=-1)
    assert await cache.aget_many(["zero", "negative"]) == {}
    await cache.aset("forever", 1, timeout=None)
    assert cache._client.get_raw_with_info(cache._key("forever", None))[1].expires_ms == 0
    await cache.aset("short", 1, timeout=0.2)
    await cache.aset_many({"m1": 1, "m2": 2}, timeout=0.2)
    assert await cache.aget("short") == 1
    # A watchdog, not a timing assertion: the entries must be gone after their TTL.
    for _ in range(100):
        if await cache.aget_many(["short", "m1", "m2"]) == {}:
            break
        await asyncio.sleep(0.05)
    assert await cache.aget_many(["short", "m1", "m2"]) == {}
    assert await cache.aget("forever") == 1


async def test_atouch(cache):
    await cache.aset("k", "v", timeout=1)
    assert await cache.atouch("k", None) is True
    assert cache._client.get_raw_with_info(cache._key("k", None))[1].expires_ms == 0
    assert await cache.atouch("k", 0) is True
    assert await cache.ahas_key("k") is False
    assert await cache.atouch("k") is False


async def test_aget_many_aset_many_adelete_many(cache):
    assert await cache.aset_many({}) == []
    assert await cache.aset_many({"a": 1, "b": 2, "c": 3}) == []
    assert await cache.aget_many(["a", "b", "x"]) == {"a": 1, "b": 2}
    assert await cache.aget_many(iter(["c"])) == {"c": 3}
    assert await cache.aget_many([]) == {}
    assert await cache.adelete_many(["a", "b"]) is None
    assert await cache.aget_many(["a", "b", "c"]) == {"c": 3}
    await cache.adelete_many([])


async def test_aset_many_returns_the_keys_that_failed(cache):
    failed = await cache.aset_many({"ok": 1, "huge": b"\x00" * (2 << 20)})
    assert failed == ["huge"]
    assert await cache.aget_many(["ok", "huge"]) == {"ok": 1}
    with pytest.raises(TooLargeError):
        await cache.aset("huge", b"\x00" * (2 << 20))


async def test_aincr_adecr(cache):
    await cache.aset("n", 41, timeout=100)
    expires = cache._client.get_raw_with_info(cache._key("n", None))[1].expires_ms
    assert await cache.aincr("n") == 42
    assert await cache.adecr("n", 10) == 32
    assert await cache.aget("n") == 32
    # The remaining TTL is kept (BaseCache's default would reset it to the default timeout).
    assert abs(cache._client.get_raw_with_info(cache._key("n", None))[1].expires_ms - expires) < 1000
    with pytest.raises(ValueError, match="Key 'missing' not found"):
        await cache.aincr("missing")
    with pytest.raises(ValueError):
        await cache.adecr("missing")
    await cache.aset("null", None)
    with pytest.raises(TypeError):
        await cache.aincr("null")


async def test_aincr_adecr_version(cache):
    await cache.aset("k", "v", version=2)
    assert await cache.aincr_version("k", version=2) == 3
    assert await cache.aget("k", version=2) is None
    assert await cache.aget("k", version=3) == "v"
    assert await cache.adecr_version("k", version=3) == 2
    assert await cache.aget("k", version=2) == "v"
    with pytest.raises(ValueError):
        await cache.aincr_version("missing")


async def test_aget_or_set(cache):
    assert await cache.aget_or_set("k", 42) == 42
    assert await cache.aget_or_set("k", 43) == 42
    assert await cache.aget_or_set("c", lambda: "called") == "called"
    assert await cache.aget_or_set("none", None) is None
    assert await cache.aget("none", "default") is None
    with pytest.raises(TypeError):
        await cache.aget_or_set("k")


async def test_ahas_key(cache):
    assert await cache.ahas_key("k") is False
    await cache.aset("k", 0)
    assert await cache.ahas_key("k") is True


async def test_aclear_and_aclose(cache):
    await cache.aset_many({"a": 1, "b": 2})
    await cache.aclose()  # keeps the connection: Django calls it after every request
    assert await cache.aget("a") == 1
    await cache.aclear()
    assert await cache.aget_many(["a", "b"]) == {}


async def test_tags(cache):
    await cache.aset_tagged("post", "p", tags=["posts/1"])
    await cache.aset_tagged("comment", "c", tags=["posts/1/comments"])
    await cache.aset("plain", "x")
    await cache.ainvalidate_tags("posts/1")
    assert await cache.aget_many(["post", "comment", "plain"]) == {"plain": "x"}


async def test_versions_and_prefixes(make_cache):
    cache = make_cache()
    ns = dict(cache._config)["namespace"]
    v2 = make_cache(VERSION=2, OPTIONS={"namespace": ns})
    prefixed = make_cache(KEY_PREFIX="p", OPTIONS={"namespace": ns})
    await cache.aset("k", 1)
    await v2.aset("k", 2)
    await prefixed.aset("k", 3)
    assert [await c.aget("k") for c in (cache, v2, prefixed)] == [1, 2, 3]
    assert await cache.aget("k", version=2) == 2


@pytest.mark.parametrize(
    "operation, args",
    [
        ("aadd", ["key with space", 1]),
        ("aget", ["key with space"]),
        ("aset", ["key with space", 1]),
        ("atouch", ["key with space"]),
        ("adelete", ["key with space"]),
        ("ahas_key", ["key with space"]),
        ("aget_many", [["key with space", "b"]]),
        ("aset_many", [{"key with space": 1, "b": 2}]),
        ("adelete_many", [["key with space", "b"]]),
    ],
)
async def test_key_warnings_on_the_async_path(cache, operation, args):
    expected = (
        "Cache key contains characters that will cause errors if used with memcached: "
        "':1:key with space'"
    )
    with pytest.warns(CacheKeyWarning) as record:
        await getattr(cache, operation)(*args)
    assert str(record[0].message) == expected


async def test_many_coroutines_at_once(cache):
    await asyncio.gather(*(cache.aset(f"k{i}", i) for i in range(200)))
    values = await asyncio.gather(*(cache.aget(f"k{i}") for i in range(200)))
    assert values == list(range(200))
    assert await cache.aget_many([f"k{i}" for i in range(200)]) == {f"k{i}": i for i in range(200)}


async def test_hits_written_by_the_sync_api_are_served(cache):
    cache.set("sync", "value")
    for _ in range(3):  # the first read may go through the pool, later ones inline
        assert await cache.aget("sync") == "value"
    cache.delete("sync")
    assert await cache.aget("sync") is None


class _Unpicklable:
    def __getstate__(self):
        raise pickle.PickleError()

"""CachekitCache's atomic operations and django-redis extras against a real cachekitd: exact
counters and one winner per add across real processes, the ttl/expire/persist states,
delete_pattern/keys/iter_keys through Django's KEY_PREFIX and VERSION, and locks (exclusive
across processes, released only by their owner, free again after their timeout)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from _helpers import wait_until

WATCHDOG_S = 120
SPAWN = multiprocessing.get_context("spawn")


def _cache_in_child(socket, namespace, **params):
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(USE_TZ=True)
        django.setup()
    from cachekit_shm.django import CachekitCache

    params.setdefault("OPTIONS", {})["namespace"] = namespace
    return CachekitCache(socket, params)


def _run(target, args_per_process):
    """Runs target(*args) in one spawned process per args tuple; returns what each put on its
    queue (the queue is the last argument), in process order."""
    queues = [SPAWN.Queue() for _ in args_per_process]
    procs = [SPAWN.Process(target=target, args=(*args, q)) for args, q in zip(args_per_process, queues)]
    for p in procs:
        p.start()
    try:
        results = [q.get(timeout=WATCHDOG_S) for q in queues]
        for p in procs:
            p.join(WATCHDOG_S)
            assert p.exitcode == 0
        return results
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()


def _ns(cache):
    return dict(cache._config)["namespace"]


# -- incr and add across processes -----------------------------------------------------------


def _incr_worker(socket, namespace, key, n, start, queue):
    cache = _cache_in_child(socket, namespace)
    start.wait(WATCHDOG_S)
    last = None
    for _ in range(n):
        last = cache.incr(key)
    queue.put(last)


@pytest.mark.parametrize("stored_as", ["counter", "pickled"])
def test_four_processes_incr_one_key_exactly(cache, cachekitd_socket, stored_as):
    # "counter": set(k, 0) stores the counter format, each incr is one atomic request.
    # "pickled": a tagged int is pickled, its incr a compare-and-set retried on conflict.
    n = 1000 if stored_as == "counter" else 300
    if stored_as == "counter":
        cache.set("hits", 0)
    else:
        cache.set_tagged("hits", 0, tags=["counters"])
    start = SPAWN.Event()
    args = [(str(cachekitd_socket), _ns(cache), "hits", n, start) for _ in range(4)]
    queues = [SPAWN.Queue() for _ in args]
    procs = [SPAWN.Process(target=_incr_worker, args=(*a, q)) for a, q in zip(args, queues)]
    for p in procs:
        p.start()
    try:
        start.set()
        lasts = [q.get(timeout=WATCHDOG_S) for q in queues]
        for p in procs:
            p.join(WATCHDOG_S)
            assert p.exitcode == 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    assert cache.get("hits") == 4 * n
    assert max(lasts) == 4 * n  # the last incr of all saw every other one
    if stored_as == "pickled":
        cache.invalidate_tags("counters")  # the tag stayed through every incr
        assert cache.get("hits") is None


def _add_worker(socket, namespace, rounds, barrier, queue):
    cache = _cache_in_child(socket, namespace)
    won = []
    for r in range(rounds):
        barrier.wait(WATCHDOG_S)
        if cache.add(f"round-{r}", os.getpid(), timeout=300):
            won.append(r)
    queue.put((os.getpid(), won))


def test_eight_processes_add_one_key_exactly_one_wins_each_round(cache, cachekitd_socket):
    rounds = 30
    barrier = SPAWN.Barrier(8)
    results = _run(_add_worker, [(str(cachekitd_socket), _ns(cache), rounds, barrier) for _ in range(8)])
    per_round = [sum(r in won for _, won in results) for r in range(rounds)]
    assert per_round == [1] * rounds
    # The value stored is the winner's (its pid: an int, stored as a counter).
    for r in range(rounds):
        (winner,) = [pid for pid, won in results if r in won]
        assert cache.get(f"round-{r}") == winner


# -- Django semantics of add / incr / decr / touch --------------------------------------------


def test_ints_are_counters_and_get_returns_them(cache):
    cache.set("n", 41)
    assert cache._client.get_raw(cache._key("n", None)) == b"41"
    assert cache.get("n") == 41 and type(cache.get("n")) is int
    assert cache.incr("n") == 42 and cache.decr("n", 2) == 40
    assert cache.get_many(["n"]) == {"n": 40}
    cache.set("flag", True)  # a bool stays a bool
    assert cache.get("flag") is True
    cache.set("big", 1 << 70)  # past 64 bits: pickled, and still counts
    assert cache.incr("big") == (1 << 70) + 1
    cache.set("max", (1 << 63) - 1)  # the counter would overflow: Python's int does not
    assert cache.incr("max") == 1 << 63
    assert cache.get("max") == 1 << 63
    cache.set("f", 1.5)
    assert cache.incr("f") == 2.5


def test_incr_semantics_are_djangos(cache):
    with pytest.raises(ValueError):
        cache.incr("missing")
    with pytest.raises(ValueError):
        cache.decr("missing")
    assert cache.get("missing") is None  # incr never creates a key
    cache.set("null", None)
    with pytest.raises(TypeError):
        cache.incr("null")
    assert cache.has_key("null") and cache.get("null", "x") is None
    cache.set("s", "text")
    with pytest.raises(TypeError):
        cache.decr("s")
    assert cache.get("s") == "text"
    cache.set("gone", 1, timeout=1)
    wait_until(lambda: not cache.has_key("gone"), WATCHDOG_S, "the key to expire")
    with pytest.raises(ValueError):
        cache.incr("gone")


def test_add_and_touch_return_bools(cache):
    assert cache.add("k", "v") is True
    assert cache.add("k", "w") is False
    assert cache.get("k") == "v"
    assert cache.add("zero", "v", timeout=0) is True and not cache.has_key("zero")
    assert cache.add("k", "v", timeout=0) is False
    assert cache.add("n", 5) is True and cache.incr("n") == 6
    assert cache.touch("k", 100) is True
    assert cache.touch("missing", 100) is False
    cache.set("short", "v", timeout=1)
    wait_until(lambda: not cache.has_key("short"), WATCHDOG_S, "the key to expire")
    assert cache.add("short", "again", timeout=100) is True  # an expired key is absent
    assert cache.get("short") == "again"


def test_async_add_incr_touch_are_the_atomic_ones(cache):
    async def main():
        assert await cache.aadd("k", 1) is True
        assert await cache.aadd("k", 2) is False
        assert await cache.aincr("k", 10) == 11
        assert await cache.adecr("k") == 10
        with pytest.raises(ValueError):
            await cache.aincr("missing")
        await cache.aset_tagged("t", 1, tags=["t"])
        assert await cache.aincr("t") == 2  # compare-and-set path
        assert await cache.atouch("k", None) is True
        assert await cache.atouch("missing") is False

    asyncio.run(main())
    assert cache.ttl("k") is None and cache.get("k") == 10


# -- ttl / pttl / expire / persist --------------------------------------------------------------


def test_ttl_states_are_django_redis(cache):
    assert cache.ttl("missing") == 0 and cache.pttl("missing") == 0
    cache.set("forever", "v", timeout=None)
    assert cache.ttl("forever") is None and cache.pttl("forever") is None
    cache.set("k", "v", timeout=100)
    assert 99 <= cache.ttl("k") <= 100
    assert 98_000 < cache.pttl("k") <= 100_000
    cache.set("short", "v", timeout=1)
    wait_until(lambda: cache.ttl("short") == 0 and not cache.has_key("short"), WATCHDOG_S, "expiry")


def test_expire_and_persist(cache):
    cache.set("k", {"v": 1}, timeout=10)
    assert cache.expire("k", 500) is True
    assert 499 <= cache.ttl("k") <= 500
    assert cache.persist("k") is True
    assert cache.ttl("k") is None and cache.get("k") == {"v": 1}
    assert cache.expire("k", None) is True and cache.ttl("k") is None
    assert cache.expire("k", 0) is True  # expired now: gone
    assert not cache.has_key("k") and cache.ttl("k") == 0
    assert cache.expire("missing", 10) is False
    assert cache.persist("missing") is False
    cache.set_tagged("tagged", 1, timeout=10, tags=["t"])
    assert cache.expire("tagged", 300) and cache.persist("tagged")
    cache.invalidate_tags("t")  # the tags stayed
    assert not cache.has_key("tagged")


# -- delete_pattern / keys / iter_keys ----------------------------------------------------------


def test_keys_strip_prefix_and_version(make_cache):
    site = make_cache(KEY_PREFIX="site", VERSION=3)
    ns = _ns(site)
    other_prefix = make_cache(KEY_PREFIX="other", OPTIONS={"namespace": ns})
    for i in range(5):
        site.set(f"user:{i}", i)
    site.set("order:1", "o")
    site.set("user:old", "x", version=2)
    other_prefix.set("user:9", "not this prefix")
    assert sorted(site.keys("user:*")) == [f"user:{i}" for i in range(5)]
    assert sorted(site.keys("*")) == ["order:1"] + [f"user:{i}" for i in range(5)]
    assert site.keys("user:?", version=2) == [] and site.keys("user:*", version=2) == ["user:old"]
    assert site.keys("user:[13]") in (["user:1", "user:3"], ["user:3", "user:1"])
    assert other_prefix.keys("*") == ["user:9"]
    assert sorted(site.iter_keys("user:*", itersize=2)) == [f"user:{i}" for i in range(5)]
    assert site.keys("nothing*") == []


def test_glob_characters_in_the_prefix_match_themselves(make_cache):
    star = make_cache(KEY_PREFIX="a*b")
    ns = _ns(star)
    plain = make_cache(KEY_PREFIX="aXb", OPTIONS={"namespace": ns})
    star.set("k", 1)
    plain.set("k", 2)
    assert star.keys("*") == ["k"] and plain.keys("*") == ["k"]
    assert star.delete_pattern("*") == 1
    assert plain.get("k") == 2


def test_iter_keys_pages_through_every_key_once(cache):
    cache.set_many({f"item:{i:04d}": i for i in range(500)})
    seen = list(cache.iter_keys("item:*", itersize=7))
    assert len(seen) == 500 and sorted(seen) == [f"item:{i:04d}" for i in range(500)]


def test_delete_pattern_counts_and_deletes_only_matches(make_cache):
    cache = make_cache(KEY_PREFIX="p", VERSION=1)
    other = make_cache(KEY_PREFIX="q", OPTIONS={"namespace": _ns(cache)})
    cache.set_many({f"session:{i}": i for i in range(20)})
    cache.set("session:v2", "kept", version=2)
    cache.set("keep", "kept")
    other.set("session:1", "other prefix")
    assert cache.delete_pattern("session:*") == 20
    assert cache.get_many([f"session:{i}" for i in range(20)]) == {}
    assert cache.get("session:v2", version=2) == "kept" and cache.get("keep") == "kept"
    assert other.get("session:1") == "other prefix"
    assert cache.delete_pattern("session:*") == 0
    assert cache.delete_pattern("session:*", version=2) == 1


def _reverse_upper(stored):
    return stored.split("|", 1)[1].lower()


def test_a_custom_key_function_needs_its_reverse(make_cache):
    def key_func(key, prefix, version):
        return f"{prefix}{version}|{key.upper()}"

    plain = make_cache(KEY_FUNCTION=key_func)
    plain.set("abc", 1)
    with pytest.raises(ImproperlyConfigured, match="REVERSE_KEY_FUNCTION"):
        plain.keys("*")
    assert plain.delete_pattern("AB*") == 1  # the pattern goes through the key function too
    reversible = make_cache(KEY_FUNCTION=key_func, REVERSE_KEY_FUNCTION=_reverse_upper)
    reversible.set("xyz", 1)
    assert reversible.keys("*") == ["xyz"]


# -- locks ----------------------------------------------------------------------------------------


def _lock_worker(socket, namespace, n, start, queue):
    cache = _cache_in_child(socket, namespace)
    start.wait(WATCHDOG_S)
    for _ in range(n):
        with cache.lock("counter-lock", timeout=60, sleep=0.001):
            # Read-then-write that loses updates unless the lock is exclusive.
            value = cache.get("counter")
            time.sleep(0.0005)
            cache.set("counter", value + 1)
    queue.put(n)


def test_lock_is_exclusive_across_processes(cache, cachekitd_socket):
    cache.set("counter", 0)
    start = SPAWN.Event()
    args = [(str(cachekitd_socket), _ns(cache), 50, start) for _ in range(4)]
    queues = [SPAWN.Queue() for _ in args]
    procs = [SPAWN.Process(target=_lock_worker, args=(*a, q)) for a, q in zip(args, queues)]
    for p in procs:
        p.start()
    try:
        start.set()
        assert [q.get(timeout=WATCHDOG_S) for q in queues] == [50] * 4
        for p in procs:
            p.join(WATCHDOG_S)
            assert p.exitcode == 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    assert cache.get("counter") == 200
    assert not cache.lock("counter-lock").locked()


def _hold_lock(socket, namespace, acquired, release, queue):
    cache = _cache_in_child(socket, namespace)
    lock = cache.lock("held", timeout=60)
    assert lock.acquire(blocking=False)
    acquired.set()
    release.wait(WATCHDOG_S)
    lock.release()
    queue.put("released")


def test_lock_is_released_only_by_its_owner(cache, cachekitd_socket):
    from cachekit_shm.django import LockError, LockNotOwnedError

    acquired, release = SPAWN.Event(), SPAWN.Event()
    queue = SPAWN.Queue()
    holder = SPAWN.Process(target=_hold_lock,
                           args=(str(cachekitd_socket), _ns(cache), acquired, release, queue))
    holder.start()
    try:
        assert acquired.wait(WATCHDOG_S)
        mine = cache.lock("held", timeout=60)
        assert mine.locked() and not mine.owned()
        assert mine.acquire(blocking=False) is False
        assert mine.acquire(blocking_timeout=0.3) is False
        with pytest.raises(LockNotOwnedError):
            mine.release()  # never acquired here
        with pytest.raises(LockError, match="could not acquire"):
            with cache.lock("held", blocking_timeout=0.2):
                pass
        assert mine.locked()  # none of that freed the other process's lock
        release.set()
        assert queue.get(timeout=WATCHDOG_S) == "released"
        holder.join(WATCHDOG_S)
        assert holder.exitcode == 0
    finally:
        if holder.is_alive():
            holder.kill()
    assert not cache.lock("held").locked()
    with cache.lock("held", timeout=60) as lock:
        assert lock.owned()
    assert not lock.owned() and not lock.locked()


def test_an_expired_lock_is_free_and_its_old_owner_cannot_release_it(cache):
    from cachekit_shm.django import LockNotOwnedError

    first = cache.lock("job", timeout=1)
    assert first.acquire(blocking=False)
    second = cache.lock("job", timeout=60, sleep=0.05)
    started = time.monotonic()
    assert second.acquire(blocking_timeout=WATCHDOG_S)  # waits for the first one's timeout
    assert time.monotonic() - started > 0.5
    assert not first.owned() and second.owned()
    with pytest.raises(LockNotOwnedError, match="expired"):
        first.release()
    assert second.owned() and second.locked()  # the old owner's release took nothing
    second.release()
    assert not second.locked()
    with pytest.raises(LockNotOwnedError):
        second.release()  # released twice

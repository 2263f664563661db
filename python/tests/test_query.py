"""Client.query and AsyncClient.query in one process, on a real cachekitd: hits, misses,
errors, timeouts, stale-while-revalidate, the fill refused after an invalidation, the
in-process coalescing of threads and tasks, and @cached built on it. The multi-process
"done when" of issue 13 is in test_query_procs.py."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from _helpers import wait_until
from cachekit_shm import AsyncClient, CachekitTimeoutError, Client, InvalidArgumentError, cached


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def bump(self) -> int:
        with self.lock:
            self.n += 1
            return self.n


def test_miss_computes_once_then_hits(client: Client) -> None:
    calls = Counter()
    assert client.query("k", lambda: {"n": calls.bump()}, ttl=60) == {"n": 1}
    assert client.query("k", lambda: {"n": calls.bump()}, ttl=60) == {"n": 1}
    assert calls.n == 1
    hit = client.get_with_info("k")
    assert hit is not None and hit[0] == {"n": 1} and not hit[1].stale
    # created_ms is the grant's (when the computation began); the TTL runs from the fill.
    assert 60_000 <= hit[1].expires_ms - hit[1].created_ms <= 61_000


def test_options_are_stored_with_the_value(client: Client) -> None:
    client.query("k", lambda: "v", tags=["posts/1"], ttl=60, grace=30)
    info = client.get_with_info("k")[1]
    assert info.grace_until_ms - info.expires_ms == 30_000
    client.invalidate("posts")
    assert client.get("k") is None


def test_bad_options_are_refused_before_computing(client: Client) -> None:
    ran = []
    for kwargs in ({"ttl": -1}, {"wait_timeout": 0}, {"lease_timeout": -1}, {"on_timeout": "wait"},
                   {"scope": "planet"}, {"tags": ["a//b"]}):
        with pytest.raises(InvalidArgumentError):
            client.query(f"k{len(ran)}", lambda: ran.append(1), **kwargs)
    assert ran == []


def test_an_error_reaches_the_caller_and_nothing_is_cached(client: Client) -> None:
    def boom() -> None:
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"):
        client.query("k", boom)
    assert client.get("k") is None
    assert client.query("k", lambda: 7) == 7  # the lease was released: the next caller computes
    assert client.stats()["daemon.leases_active"] == 0


def test_threads_of_one_process_compute_once(client: Client) -> None:
    calls = Counter()
    start = threading.Barrier(20)
    out = []

    def compute() -> str:
        calls.bump()
        time.sleep(0.3)
        return "value"

    def caller() -> None:
        start.wait()
        out.append(client.query("hot", compute, ttl=60))

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == ["value"] * 20
    assert calls.n == 1


def test_a_waiter_that_times_out_computes_or_raises(client: Client) -> None:
    holding = threading.Event()
    release = threading.Event()

    def slow() -> str:
        holding.set()
        release.wait(30)
        return "slow"

    other = Client(socket=client._opts.socket, namespace=client.namespace)  # another connection pool
    holder = threading.Thread(target=lambda: client.query("k", slow))
    holder.start()
    try:
        assert holding.wait(10)
        t0 = time.monotonic()
        with pytest.raises(CachekitTimeoutError, match="wait_timeout"):
            other.query("k", lambda: "mine", wait_timeout=0.3, on_timeout="error")
        assert 0.25 < time.monotonic() - t0 < 3
        # The default: compute it after the wait (and store it: the holder's fill then loses).
        assert other.query("k", lambda: "mine", wait_timeout=0.3) == "mine"
    finally:
        release.set()
        holder.join()
        other.close()
    assert client.get("k") == "mine"


def test_a_fill_across_an_invalidation_is_returned_but_not_cached(client: Client) -> None:
    def compute() -> str:
        client.invalidate("users/1")  # a write lands while the value is being computed
        return "old row"

    assert client.query("k", compute, tags=["users/1"]) == "old row"
    assert client.get("k") is None
    assert client.stats()["daemon.lease_fills_refused"] >= 1
    assert client.query("k", lambda: "new row", tags=["users/1"]) == "new row"
    assert client.get("k") == "new row"


def test_a_delete_during_the_computation_refuses_the_fill(client: Client) -> None:
    def compute() -> str:
        client.delete("k")
        return "old"

    assert client.query("k", compute) == "old"
    assert client.get("k") is None


def test_stale_value_is_served_and_refreshed_once_in_the_background(client: Client) -> None:
    client.set("k", "old", ttl=0.05, grace=60)
    time.sleep(0.1)
    calls = Counter()
    release = threading.Event()

    def refresh() -> str:
        calls.bump()
        release.wait(30)
        return "new"

    t0 = time.monotonic()
    assert [client.query("k", refresh, ttl=60) for _ in range(50)] == ["old"] * 50
    assert time.monotonic() - t0 < 10  # nobody waited for the refresh (it waits for `release`)
    release.set()
    wait_until(lambda: client.get("k") == "new", what="the refresh to land")
    assert client.query("k", refresh, ttl=60) == "new"
    assert calls.n == 1


def test_a_failed_refresh_keeps_serving_the_stale_value(client: Client) -> None:
    client.set("k", "old", ttl=0.05, grace=60)
    time.sleep(0.1)

    def boom() -> str:
        raise RuntimeError("backend down")

    assert client.query("k", boom) == "old"
    wait_until(lambda: client.stats()["daemon.lease_releases"] >= 1, what="the refresh lease's release")
    # Every stale read starts a refresh unless one is running: the next one succeeds.
    wait_until(lambda: client.query("k", lambda: "new", ttl=60) == "new", what="the second refresh")


def test_a_value_of_another_serializer_is_recomputed(client: Client, raw_client: Client) -> None:
    raw_client.set_raw("k", b"\x00not a pickle")
    assert client.query("k", lambda: "fresh") == "fresh"
    assert client.get("k") == "fresh"


def test_without_the_daemon_the_value_is_computed(tmp_path) -> None:
    with Client(socket=str(tmp_path / "none.sock"), lazy=True) as c:
        assert c.query("k", lambda: 42) == 42
        with pytest.raises(KeyError):
            c.query("k", lambda: (_ for _ in ()).throw(KeyError("x")))


# ---- asyncio ---------------------------------------------------------------------------------


async def test_async_tasks_compute_once_and_the_loop_keeps_running(cachekitd_socket, namespace) -> None:
    calls = Counter()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def compute() -> str:
        calls.bump()
        await asyncio.sleep(0.3)
        return "value"

    async with AsyncClient(socket=cachekitd_socket, namespace=namespace) as c:
        tick = asyncio.create_task(ticker())
        out = await asyncio.gather(*[c.query("hot", compute, ttl=60) for _ in range(64)])
        tick.cancel()
    assert out == ["value"] * 64
    assert calls.n == 1
    assert ticks >= 15  # the loop ran while the tasks waited


async def test_async_with_a_plain_function_runs_it_off_the_loop(cachekitd_socket, namespace) -> None:
    loop_thread = threading.get_ident()
    ran_on = []

    def compute() -> str:
        ran_on.append(threading.get_ident())
        time.sleep(0.05)
        return "v"

    async with AsyncClient(socket=cachekitd_socket, namespace=namespace) as c:
        assert await c.query("k", compute) == "v"
        assert await c.query("k", compute) == "v"
    assert len(ran_on) == 1 and ran_on[0] != loop_thread


async def test_async_error_goes_to_its_caller_and_the_waiters_compute(cachekitd_socket, namespace) -> None:
    async with AsyncClient(socket=cachekitd_socket, namespace=namespace) as c:
        async def boom() -> str:
            await asyncio.sleep(0.1)
            raise ValueError("holder failed")

        async def fine() -> str:
            return "from a waiter"

        holder = asyncio.create_task(c.query("k", boom))
        await asyncio.sleep(0.02)
        waiters = [asyncio.create_task(c.query("k", fine)) for _ in range(10)]
        with pytest.raises(ValueError, match="holder failed"):
            await holder
        assert await asyncio.gather(*waiters) == ["from a waiter"] * 10
        assert await c.get("k") == "from a waiter"


async def test_async_stale_is_served_at_once_and_refreshed_by_one_task(cachekitd_socket, namespace) -> None:
    calls = Counter()
    async with AsyncClient(socket=cachekitd_socket, namespace=namespace) as c:
        await c.set("k", "old", ttl=0.05, grace=60)
        await asyncio.sleep(0.1)

        async def refresh() -> str:
            calls.bump()
            await asyncio.sleep(1.0)
            return "new"

        t0 = time.monotonic()
        assert await asyncio.gather(*[c.query("k", refresh, ttl=60) for _ in range(64)]) == ["old"] * 64
        assert time.monotonic() - t0 < 0.8  # before the refresh could end: nobody waited for it
        for _ in range(1000):
            if await c.get("k") == "new":
                break
            await asyncio.sleep(0.01)
        assert await c.query("k", refresh, ttl=60) == "new"
    assert calls.n == 1


async def test_async_cancelled_holder_releases_the_lease(cachekitd_socket, namespace) -> None:
    async with AsyncClient(socket=cachekitd_socket, namespace=namespace) as c:
        async def forever() -> str:
            await asyncio.sleep(60)
            return "never"

        holder = asyncio.create_task(c.query("k", forever))
        await asyncio.sleep(0.1)
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        t0 = time.monotonic()
        assert await c.query("k", lambda: "next", wait_timeout=5) == "next"
        assert time.monotonic() - t0 < 2


# ---- @cached -----------------------------------------------------------------------------


def test_cached_coalesces_threads_of_one_process(client: Client) -> None:
    calls = Counter()

    @cached(client=client, ttl=60)
    def report(day: int) -> str:
        calls.bump()
        time.sleep(0.2)
        return f"report {day}"

    start = threading.Barrier(20)
    out = []

    def caller() -> None:
        start.wait()
        out.append(report(3))

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == ["report 3"] * 20
    assert calls.n == 1


async def test_cached_async_coalesces_tasks(client: Client) -> None:
    calls = Counter()

    @cached(client=client, ttl=60)
    async def report(day: int) -> str:
        calls.bump()
        await asyncio.sleep(0.2)
        return f"report {day}"

    assert await asyncio.gather(*[report(4) for _ in range(64)]) == ["report 4"] * 64
    assert calls.n == 1


def test_cached_refuses_bad_query_options() -> None:
    with pytest.raises(InvalidArgumentError):
        cached(wait_timeout=0)
    with pytest.raises(InvalidArgumentError):
        cached(on_timeout="later")

"""AsyncClient: the same operations as coroutines; hits served inline, misses and writes in the
thread pool; the event loop keeps running while the daemon is stuck."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cachekit_shm import AsyncClient, CachekitTimeoutError, Client, ClosedError, Info, Pong, UnavailableError


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.submitted = 0

    def submit(self, *args, **kwargs):
        self.submitted += 1
        return super().submit(*args, **kwargs)


@pytest.fixture
def pool():
    p = CountingExecutor()
    yield p
    p.shutdown(wait=True)


@pytest.fixture
async def aclient(cachekitd_socket, namespace, pool):
    async with AsyncClient(socket=cachekitd_socket, namespace=namespace, executor=pool) as c:
        yield c


async def test_every_operation(aclient):
    await aclient.set("k", {"v": 1}, ttl=60, tags=[("things", 1)])
    assert await aclient.get("k") == {"v": 1}
    assert await aclient.get("missing", "d") == "d"
    value, info = await aclient.get_with_info("k")
    assert value == {"v": 1} and isinstance(info, Info) and not info.stale
    assert await aclient.get_with_info("missing") is None
    await aclient.set_raw("r", b"raw")
    assert await aclient.get_raw("r") == b"raw"
    assert await aclient.get_raw("missing") is None
    await aclient.set_many({"a": 1, "b": 2}, tags=["ab"])
    assert await aclient.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    assert await aclient.get_many(["a", "b"]) == {"a": 1, "b": 2}  # inline this time
    await aclient.invalidate("ab")
    assert await aclient.get_many(["a", "b"]) == {}
    await aclient.invalidate(("things", 1))
    assert await aclient.get("k") is None
    assert await aclient.delete("r") is True
    assert await aclient.delete("r") is False
    await aclient.set("z", 1)
    await aclient.clear()
    assert await aclient.get("z") is None
    assert "daemon.table_live_entries" in await aclient.stats()
    assert isinstance(await aclient.ping(), Pong)


async def test_hits_are_inline_misses_and_writes_are_pooled(aclient, pool, cachekitd_socket, namespace):
    await aclient.set("k", "v")  # a write: in the pool
    assert pool.submitted == 1
    for _ in range(100):
        assert await aclient.get("k") == "v"  # a key it wrote: hits inline
    assert await aclient.get_with_info("k") is not None
    assert pool.submitted == 1
    assert await aclient.get("cold") is None  # never seen: asked in the pool
    assert pool.submitted == 2
    # A key written by someone else: the first get goes to the pool, the next ones are inline.
    with Client(socket=cachekitd_socket, namespace=namespace) as other:
        other.set("theirs", 42)
    assert await aclient.get("theirs") == 42
    assert pool.submitted == 3
    for _ in range(10):
        assert await aclient.get("theirs") == 42
    assert pool.submitted == 3


async def test_a_hinted_key_that_went_away_misses_correctly(aclient, cachekitd_socket, namespace, pool):
    await aclient.set("k", 1)
    assert await aclient.get("k") == 1
    with Client(socket=cachekitd_socket, namespace=namespace) as other:
        other.delete("k")
    assert await aclient.get("k") is None  # inline, once: the answer is still right
    assert await aclient.get("k") is None  # no longer hinted: in the pool
    assert pool.submitted == 2


async def test_slow_inline_get_sends_gets_to_the_pool(cachekitd_socket, namespace, pool):
    async with AsyncClient(socket=cachekitd_socket, namespace=namespace, executor=pool, inline_budget=0) as c:
        await c.set("a", 1)
        await c.set("b", 2)
        with Client(socket=cachekitd_socket, namespace=namespace) as other:
            other.delete("a")
        assert await c.get("a") is None  # inline, not from the segment, over budget: breaker
        before = pool.submitted
        assert await c.get("b") == 2  # hinted, but the breaker is open: pooled
        assert pool.submitted == before + 1


async def test_the_loop_runs_while_the_daemon_is_stuck(make_daemon):
    d = make_daemon()
    async with AsyncClient(socket=d.socket, request_timeout=1.0) as c:
        await c.set("warm", 1)
        ticks = []

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.005)

        t = asyncio.get_running_loop().create_task(ticker())
        d.freeze()
        try:
            started = time.monotonic()
            with pytest.raises(CachekitTimeoutError):
                await c.set("k", 1)
            assert await c.get("cold") is None  # the daemon cannot answer: a miss, after the timeout
            elapsed = time.monotonic() - started
        finally:
            d.thaw()
            t.cancel()
        assert elapsed >= 1.0  # the requests really waited for the stuck daemon...
        gaps = [b - a for a, b in zip(ticks, ticks[1:]) if a >= started]
        assert gaps and max(gaps) < 0.5, max(gaps)  # ...while the loop kept running


async def test_daemon_down(tmp_path):
    async with AsyncClient(socket=str(tmp_path / "none.sock"), lazy=True) as c:
        assert await c.get("k", "default") == "default"
        assert await c.get_many(["k"]) == {}
        with pytest.raises(UnavailableError):
            await c.set("k", 1)
        with pytest.raises(UnavailableError):
            await c.ping()


async def test_close(cachekitd_socket, namespace):
    c = AsyncClient(socket=cachekitd_socket, namespace=namespace)
    await c.set("k", 1)
    await c.aclose()
    await c.aclose()
    c.close()
    assert c.closed
    with pytest.raises(ClosedError):
        await c.get("k")
    with pytest.raises(ClosedError):
        await c.set("k", 1)
    with AsyncClient(socket=cachekitd_socket, namespace=namespace) as c2:
        pass
    assert c2.closed


async def test_with_namespace_and_from_client(cachekitd_socket, namespace):
    async with AsyncClient(socket=cachekitd_socket, namespace=namespace) as c:
        other = c.with_namespace(namespace + "-x")
        await c.set("k", 1)
        assert await other.get("k") is None
        other.close()
    sync = Client(socket=cachekitd_socket, namespace=namespace)
    wrapped = AsyncClient.from_client(sync)
    assert wrapped.sync is sync
    assert await wrapped.get("k") == 1
    sync.close()


async def test_many_concurrent_tasks(aclient):
    async def one(i):
        await aclient.set(f"k{i}", i)
        assert await aclient.get(f"k{i}") == i
        return await aclient.get(f"k{(i + 1) % 50}", -1)

    results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(50))), 60)
    assert len(results) == 50


def test_plain_asyncio_run(cachekitd_socket, namespace):
    async def main():
        async with AsyncClient(socket=cachekitd_socket, namespace=namespace) as c:
            await c.set("k", "v")
            return await c.get("k")

    assert asyncio.run(main()) == "v"

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
        assert await aclient.get("k") == "v"  # in the segment: inline
    assert await aclient.get_raw("k") is not None
    value, info = await aclient.get_with_info("k")
    assert value == "v" and info.source == "segment"
    assert pool.submitted == 1
    assert await aclient.get("cold") is None  # not in the segment: asked in the pool
    assert await aclient.get_raw("cold") is None
    assert await aclient.get_with_info("cold") is None
    assert pool.submitted == 4
    # A key written by another client: in the segment, so inline from the first get on.
    with Client(socket=cachekitd_socket, namespace=namespace) as other:
        other.set("theirs", 42)
    for _ in range(10):
        assert await aclient.get("theirs") == 42
    assert pool.submitted == 4


async def test_inline_gets_send_no_request(aclient, pool):
    await aclient.set("k", 1)
    before = (await aclient.stats())["client.requests"]
    for _ in range(100):
        assert await aclient.get("k") == 1
        assert aclient.sync.get_local("k") == 1
        assert aclient.sync.get_local("cold", "d") == "d"  # a miss, still no request
    after = (await aclient.stats())["client.requests"]
    assert after == before + 1  # the second STATS only


async def test_a_key_gone_elsewhere_misses_through_the_pool(aclient, cachekitd_socket, namespace, pool):
    await aclient.set("k", 1)
    assert await aclient.get("k") == 1
    with Client(socket=cachekitd_socket, namespace=namespace) as other:
        other.delete("k")
    assert await aclient.get("k") is None  # not in the segment any more: asked in the pool
    assert pool.submitted == 2
    with Client(socket=cachekitd_socket, namespace=namespace) as other:
        other.set("k", 2)
    assert await aclient.get("k") == 2  # back in the segment: inline
    assert pool.submitted == 2


async def test_get_many_reads_inline_and_asks_only_for_the_rest(aclient, pool):
    await aclient.set_many({"a": 1, "b": 2})
    assert pool.submitted == 1
    assert await aclient.get_many(["a", "b"]) == {"a": 1, "b": 2}  # all inline
    assert pool.submitted == 1
    result = await aclient.get_many(["x", "a", "y", "b"])  # one pooled batch for x and y
    assert result == {"a": 1, "b": 2} and list(result) == ["a", "b"]
    assert pool.submitted == 2
    assert await aclient.get_many([]) == {}
    assert pool.submitted == 2


async def test_a_stale_segment_is_never_read_inline(make_daemon, pool):
    d = make_daemon("--heartbeat-ms", "50", "--heartbeat-timeout-ms", "200")
    async with AsyncClient(socket=d.socket, request_timeout=0.5, executor=pool) as c:
        await c.set("warm", 1)
        assert await c.get("warm") == 1
        before = pool.submitted
        d.freeze()
        try:
            await asyncio.sleep(0.5)  # the heartbeat is now older than its timeout
            started = time.monotonic()
            assert c.sync.get_local("warm") is None  # the segment is not trusted; no waiting
            assert time.monotonic() - started < 0.4  # under request_timeout: it did not wait
            assert await c.get("warm") is None  # so the get went to the pool, and timed out there
            assert pool.submitted == before + 1
        finally:
            d.thaw()
        deadline = time.monotonic() + 10
        while c.sync.get_local("warm") is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert await c.get("warm") == 1  # inline again
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

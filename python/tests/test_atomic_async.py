"""The atomic and management operations of AsyncClient: the same meanings as Client's, every
one in the executor, and the event loop keeps running while they wait; processes racing incr
and add through asyncio."""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cachekit_shm import AsyncClient, CachekitTimeoutError, InvalidArgumentError


@pytest.fixture
async def aclient(cachekitd_socket, namespace):
    pool = ThreadPoolExecutor(max_workers=4)
    async with AsyncClient(socket=cachekitd_socket, namespace=namespace, executor=pool) as c:
        yield c
    pool.shutdown(wait=True)


async def test_every_atomic_operation(aclient):
    assert await aclient.add("a", "first") is True
    assert await aclient.add("a", "second") is False
    assert await aclient.replace("a", "third") is True
    assert await aclient.replace("nope", 1) is False
    value, info = await aclient.get_with_info("a")
    assert value == "third" and info.version > 0
    assert await aclient.cas("a", "fourth", info.version) is True
    assert await aclient.cas("a", "fifth", info.version) is False
    assert await aclient.get("a") == "fourth"

    assert await aclient.incr("n") == 1
    assert await aclient.incr("n", 10) == 11
    assert await aclient.decr("n", 2) == 9
    assert await aclient.incr("none", initial=None) is None
    assert await aclient.get("n") == 9  # an int, read inline from the segment
    assert await aclient.get_many(["n", "a"]) == {"n": 9, "a": "fourth"}
    await aclient.set("text", "x")
    with pytest.raises(InvalidArgumentError, match="not an integer"):
        await aclient.incr("text")

    assert await aclient.ttl("n") == math.inf
    assert await aclient.expire("n", 30) is True
    assert 20 < await aclient.ttl("n") <= 30
    assert await aclient.persist("n") is True
    assert await aclient.touch("n", None) is True
    assert await aclient.ttl("missing") is None

    assert await aclient.get_and_delete("n") == 9
    assert await aclient.get_and_delete("n", "gone") == "gone"

    for i in range(30):
        await aclient.set(f"s:{i}", i)
    keys = [item.key async for item in aclient.scan_iter("s:*", page_size=4)]
    assert sorted(keys) == sorted(f"s:{i}".encode() for i in range(30))
    assert await aclient.delete_pattern("s:1*") == 11
    assert len([1 async for _ in aclient.scan_iter("s:*")]) == 19
    names = {ns.name: ns for ns in await aclient.namespaces()}
    assert names[aclient.namespace].entries >= 19


async def test_the_loop_runs_while_an_atomic_operation_waits(make_daemon):
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
                await c.incr("n")
            with pytest.raises(CachekitTimeoutError):
                await c.add("k", 1)
            elapsed = time.monotonic() - started
        finally:
            d.thaw()
            t.cancel()
        assert elapsed >= 2.0  # both really waited for the stuck daemon...
        gaps = [b - a for a, b in zip(ticks, ticks[1:]) if a >= started]
        assert gaps and max(gaps) < 0.5, max(gaps)  # ...while the loop kept running


async def test_many_tasks_racing_incr_and_add(aclient):
    results = await asyncio.gather(*(aclient.incr("c") for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    wins = await asyncio.gather(*(aclient.add("once", i) for i in range(50)))
    assert wins.count(True) == 1

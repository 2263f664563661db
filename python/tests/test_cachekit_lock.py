"""The cachekit package backend's lock (``acquire_lock``) on cachekitd's fill lease: cachekit's
async ``@cache`` computes a missing value once across processes; a failing computation
releases the lease; the non-blocking form (cachekit's revalidation) grants one caller of the
host; and a fill across an invalidation is not stored. Also Django's ``get_or_set`` across
processes (it runs on the same lease, through ``Client.query``)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
import uuid

import pytest

cachekit = pytest.importorskip("cachekit")

from cachekit import cache  # noqa: E402
from cachekit.backends.base import LockableBackend  # noqa: E402
from cachekit.config.nested import L1CacheConfig  # noqa: E402

from cachekit_shm.cachekit_backend import CachekitShmBackend  # noqa: E402

WATCHDOG_S = 120
PROCS = 4
NO_L1 = L1CacheConfig(enabled=False)


@pytest.fixture
def namespace():
    return f"ckl-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def backend(cachekitd_socket, namespace):
    with CachekitShmBackend(socket=str(cachekitd_socket), namespace=namespace) as b:
        yield b


def _count(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)


def _lines(path) -> list:
    return path.read_text().splitlines() if path.exists() else []


def test_is_a_lockable_backend(backend):
    assert isinstance(backend, LockableBackend)


async def test_lock_then_set_fills_every_waiter(backend, cachekitd_socket, namespace):
    other = CachekitShmBackend(socket=str(cachekitd_socket), namespace=namespace)
    try:
        async with backend.acquire_lock("k", timeout=30, blocking_timeout=5) as held:
            assert held
            waiter = asyncio.create_task(_lock_and_get(other, "k"))
            await asyncio.sleep(0.2)
            assert not waiter.done()
            await asyncio.to_thread(backend.set, "k", b"value", 60)
            got, value = await asyncio.wait_for(waiter, 5)  # woken by the fill, not the exit
        assert got and value == b"value"
        assert backend.client.stats()["daemon.lease_fills"] >= 1
    finally:
        other.close()


async def _lock_and_get(b, key):
    async with b.acquire_lock(key, timeout=30, blocking_timeout=5) as got:
        return got, await asyncio.to_thread(b.get, key)


async def test_leaving_without_a_set_hands_the_lease_over(backend, cachekitd_socket, namespace):
    other = CachekitShmBackend(socket=str(cachekitd_socket), namespace=namespace)
    try:
        async with backend.acquire_lock("k", timeout=30, blocking_timeout=5) as held:
            assert held
            waiter = asyncio.create_task(_lock_and_get(other, "k"))
            await asyncio.sleep(0.1)
        got, value = await asyncio.wait_for(waiter, 5)
        assert got and value is None  # it holds the lease now: it computes
    finally:
        other.close()


async def test_a_busy_lock_yields_false_after_blocking_timeout(backend, cachekitd_socket, namespace):
    other = CachekitShmBackend(socket=str(cachekitd_socket), namespace=namespace)
    try:
        async with backend.acquire_lock("k", timeout=30, blocking_timeout=5):
            t0 = time.monotonic()
            async with other.acquire_lock("k", timeout=30, blocking_timeout=0.3) as got:
                assert got is False
            assert 0.25 < time.monotonic() - t0 < 3
    finally:
        other.close()


async def test_non_blocking_lock_is_the_refresh_lease(backend, cachekitd_socket, namespace):
    other = CachekitShmBackend(socket=str(cachekitd_socket), namespace=namespace)
    try:
        backend.client.set_raw("k", b"old", ttl=0.05, grace=60)
        await asyncio.sleep(0.1)  # stale now
        async with backend.acquire_lock("k", timeout=30, blocking_timeout=None) as first:
            async with other.acquire_lock("k", timeout=30, blocking_timeout=None) as second:
                assert first is True and second is False
        backend.client.set_raw("k", b"new", ttl=60)
        async with backend.acquire_lock("k", timeout=30, blocking_timeout=None) as fresh:
            assert fresh is False  # nothing to refresh
    finally:
        other.close()


async def test_a_set_after_an_invalidation_is_not_stored(backend):
    async with backend.acquire_lock("k", timeout=30, blocking_timeout=5) as held:
        assert held
        backend.delete("k")  # the write that makes the computed value old
        await asyncio.to_thread(backend.set, "k", b"old", 60)
    assert backend.get("k") is None


async def test_cache_decorator_async_coalesces_in_one_process(backend):
    calls = []

    @cache(backend=backend, ttl=60, l1=NO_L1)
    async def slow(x):
        calls.append(x)
        await asyncio.sleep(0.3)
        return x * 2

    assert await asyncio.gather(*[slow(21) for _ in range(32)]) == [42] * 32
    assert calls == [21]


def _cache_worker(index, sock, namespace, log, barrier, queue):
    try:
        b = CachekitShmBackend(socket=sock, namespace=namespace)

        @cache(backend=b, ttl=60, l1=NO_L1, namespace="coalesce")
        async def slow(x):
            _count(log)
            await asyncio.sleep(0.5)
            return {"x": x}

        async def main():
            barrier.wait(WATCHDOG_S)
            return await asyncio.gather(*[slow(5) for _ in range(16)])

        queue.put((index, "ok", asyncio.run(main())))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        import traceback

        queue.put((index, "error", f"{e!r}\n{traceback.format_exc()}"))


def _run(target, args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(i, *args, queue)) for i in range(PROCS)]
    for p in procs:
        p.start()
    try:
        out = [queue.get(timeout=WATCHDOG_S) for _ in procs]
    finally:
        for p in procs:
            p.join(WATCHDOG_S)
            if p.is_alive():
                p.kill()
    errors = [o for o in out if o[1] == "error"]
    assert not errors, errors[0][2]
    return [o[2] for o in out]


def test_cache_decorator_async_computes_once_across_processes(cachekitd_socket, namespace, tmp_path):
    log = tmp_path / "computed"
    barrier = mp.get_context("spawn").Barrier(PROCS)
    out = _run(_cache_worker, (str(cachekitd_socket), namespace, str(log), barrier))
    assert all(v == {"x": 5} for per in out for v in per) and sum(map(len, out)) == 16 * PROCS
    assert len(_lines(log)) == 1, _lines(log)


def _django_worker(index, sock, namespace, log, barrier, queue):
    try:
        import threading

        import django
        from django.conf import settings

        settings.configure(CACHES={"default": {"BACKEND": "cachekit_shm.django.CachekitCache",
                                               "LOCATION": sock, "OPTIONS": {"namespace": namespace}}})
        django.setup()
        from django.core.cache import cache as dj

        def compute():
            _count(log)
            time.sleep(0.5)
            return ["row", 1]

        out = []
        barrier.wait(WATCHDOG_S)

        def caller():
            out.append(dj.get_or_set("report", compute, timeout=60))

        threads = [threading.Thread(target=caller) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        async def many():
            return await asyncio.gather(*[dj.aget_or_set("areport", compute, timeout=60) for _ in range(8)])

        out.extend(asyncio.run(many()))
        queue.put((index, "ok", out))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        import traceback

        queue.put((index, "error", f"{e!r}\n{traceback.format_exc()}"))


def test_django_get_or_set_computes_once_across_processes(cachekitd_socket, namespace, tmp_path):
    log = tmp_path / "computed"
    barrier = mp.get_context("spawn").Barrier(PROCS)
    out = _run(_django_worker, (str(cachekitd_socket), namespace, str(log), barrier))
    assert all(v == ["row", 1] for per in out for v in per) and sum(map(len, out)) == 16 * PROCS
    assert len(_lines(log)) == 2, _lines(log)  # one for "report", one for "areport"

"""The issue's "done when" for the Python client, with real separate processes (spawned) on one
cachekitd: 4 processes x 1000 incr of one key end at exactly 4000; 8 processes racing add of
one key, round after round, give exactly one True per round; 4 processes building a counter on
get + cas with retries lose no update."""

from __future__ import annotations

import multiprocessing as mp
import time

WATCHDOG_S = 120


def _run(target, n: int, args):
    """Runs target(index, *args, results) in `n` spawned processes; their results, by index."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(i, *args, results)) for i in range(n)]
    for p in procs:
        p.start()
    out = []
    deadline = time.monotonic() + WATCHDOG_S
    try:
        for _ in procs:
            out.append(results.get(timeout=max(1.0, deadline - time.monotonic())))
    finally:
        for p in procs:
            p.join(max(1.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
    errors = [o for o in out if o[1] == "error"]
    assert not errors, errors[0][2]
    return [o[2] for o in sorted(out)]


def _guard(index, results, body):
    try:
        results.put((index, "ok", body()))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        import traceback

        results.put((index, "error", f"{e!r}\n{traceback.format_exc()}"))


def _incr_worker(index, sock, namespace, barrier, results):
    def body():
        from cachekit_shm import Client

        with Client(socket=sock, namespace=namespace) as c:
            barrier.wait(WATCHDOG_S)
            return [c.incr("hits") for _ in range(1000)]

    _guard(index, results, body)


def test_four_processes_incr_one_key_to_exactly_4000(cachekitd_socket, namespace, client):
    barrier = mp.get_context("spawn").Barrier(4)
    seen = _run(_incr_worker, 4, (cachekitd_socket, namespace, barrier))
    assert client.get("hits") == 4000
    # Every incr returned a distinct value: each saw the counter exactly once.
    values = [v for per in seen for v in per]
    assert sorted(values) == list(range(1, 4001))


ROUNDS = 40


def _add_worker(index, sock, namespace, barrier, results):
    def body():
        from cachekit_shm import Client

        wins = []
        with Client(socket=sock, namespace=namespace) as c:
            for r in range(ROUNDS):
                barrier.wait(WATCHDOG_S)
                if c.add(f"lock:{r}", index, ttl=60):
                    wins.append(r)
        return wins

    _guard(index, results, body)


def test_eight_processes_racing_add_exactly_one_wins_each_round(cachekitd_socket, namespace, client):
    barrier = mp.get_context("spawn").Barrier(8)
    wins = _run(_add_worker, 8, (cachekitd_socket, namespace, barrier))
    for r in range(ROUNDS):
        winners = [i for i, w in enumerate(wins) if r in w]
        assert len(winners) == 1, (r, winners)
        assert client.get(f"lock:{r}") == winners[0]  # the value is the winner's


def _cas_worker(index, sock, namespace, barrier, results):
    def body():
        from cachekit_shm import Client

        retries = 0
        with Client(socket=sock, namespace=namespace) as c:
            barrier.wait(WATCHDOG_S)
            for _ in range(300):
                while True:
                    value, info = c.get_with_info("count")
                    if c.cas("count", {"n": value["n"] + 1}, info.version):
                        break
                    retries += 1
        return retries

    _guard(index, results, body)


def test_four_processes_counting_with_cas_lose_no_update(cachekitd_socket, namespace, client):
    client.set("count", {"n": 0})  # a pickled dict: cas works on any value
    barrier = mp.get_context("spawn").Barrier(4)
    _run(_cas_worker, 4, (cachekitd_socket, namespace, barrier))
    assert client.get("count") == {"n": 1200}


def _aincr_worker(index, sock, namespace, barrier, results):
    def body():
        import asyncio

        from cachekit_shm import AsyncClient

        async def main():
            async with AsyncClient(socket=sock, namespace=namespace) as c:
                barrier.wait(WATCHDOG_S)
                won = await c.add("async-lock", index, ttl=60)
                for _ in range(10):  # 10 rounds of 100 concurrent incrs
                    await asyncio.gather(*(c.incr("async-hits") for _ in range(100)))
                return won

        return asyncio.run(main())

    _guard(index, results, body)


def test_four_processes_through_asyncio_incr_exactly_and_add_once(cachekitd_socket, namespace, client):
    barrier = mp.get_context("spawn").Barrier(4)
    won = _run(_aincr_worker, 4, (cachekitd_socket, namespace, barrier))
    assert client.get("async-hits") == 4000
    assert won.count(True) == 1

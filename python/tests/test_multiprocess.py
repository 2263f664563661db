"""Four worker processes (multiprocessing) on one cachekitd: each one's writes are the others'
hits from shared memory, an invalidation by one is seen by all, and @cached keys are the same
in every process (each has its own hash seed)."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import pytest

WORKERS = 4
WATCHDOG_S = 120


def _worker(index: int, sock: str, namespace: str, barrier, results) -> None:
    from cachekit_shm import Client

    try:
        with Client(socket=sock, namespace=namespace) as c:
            # 1. Everyone sees the parent's values, from the segment.
            for i in range(50):
                value, info = c.get_with_info(f"shared-{i}")
                assert value == {"i": i}, value
                assert info.source == "segment", info
            # 2. Each writes its own keys, tagged by worker; then reads everyone's.
            for i in range(50):
                c.set(f"w{index}-{i}", (index, i), ttl=120, tags=[("worker", index), "all"])
            barrier.wait(WATCHDOG_S)
            for other in range(WORKERS):
                for i in range(50):
                    value, info = c.get_with_info(f"w{other}-{i}")
                    assert value == (other, i)
                    assert info.source == "segment"
            barrier.wait(WATCHDOG_S)
            # 3. Worker 0 invalidates worker 1's tag; every worker then misses those keys only.
            if index == 0:
                c.invalidate(("worker", 1))
            barrier.wait(WATCHDOG_S)
            for i in range(50):
                assert c.get(f"w1-{i}") is None
                assert c.get(f"w2-{i}") == (2, i)
            barrier.wait(WATCHDOG_S)
            # 4. Worker 3 invalidates "all": nothing of the workers' is left anywhere.
            if index == 3:
                c.invalidate("all")
            barrier.wait(WATCHDOG_S)
            assert c.get_many([f"w{o}-{i}" for o in range(WORKERS) for i in range(50)]) == {}
            assert c.get("shared-0") == {"i": 0}
            stats = c.stats()
        results.put((index, "ok", stats.get("client.segment_hits", -1)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        import traceback

        barrier.abort()
        results.put((index, "error", f"{e!r}\n{traceback.format_exc()}"))


def _run(target, args_of, ctx_name: str = "spawn"):
    ctx = mp.get_context(ctx_name)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_of(i), results)) for i in range(WORKERS)]
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
    return sorted(out)


@pytest.mark.parametrize("start", ["spawn", "fork"])
def test_four_workers_share_hits_and_invalidations(client, cachekitd_socket, namespace, start):
    for i in range(50):
        client.set(f"shared-{i}", {"i": i})
    barrier = mp.get_context(start).Barrier(WORKERS)
    out = _run(_worker, lambda i: (i, cachekitd_socket, namespace, barrier), start)
    errors = [o for o in out if o[1] != "ok"]
    assert not errors, errors[0][2]
    assert [o[0] for o in out] == list(range(WORKERS))
    # After the last invalidation the parent, too, misses every worker's key.
    assert client.get_many([f"w{o}-{i}" for o in range(WORKERS) for i in range(50)]) == {}


# ---- @cached across processes ---------------------------------------------------------------------

def _decorated_in_child(sock: str, namespace: str, results) -> None:
    try:
        import cached_funcs

        from cachekit_shm import Client, set_default_client

        set_default_client(Client(socket=sock, namespace=namespace))
        keys = [cached_funcs.compute.cache_key(*args, **kwargs) for args, kwargs in cached_funcs.CALLS]
        # A hit on what the parent computed: compute() returns the pid that ran it.
        pids = [cached_funcs.compute(*args, **kwargs) for args, kwargs in cached_funcs.CALLS]
        results.put(("ok", keys, pids, os.environ.get("PYTHONHASHSEED")))
    except BaseException as e:  # noqa: BLE001
        import traceback

        results.put(("error", repr(e), traceback.format_exc(), None))


def test_cached_keys_are_the_same_in_every_process(cachekitd_socket, namespace, monkeypatch):
    import sys

    here = os.path.dirname(__file__)
    monkeypatch.syspath_prepend(here)
    import cached_funcs

    from cachekit_shm import Client, set_default_client

    c = Client(socket=cachekitd_socket, namespace=namespace)
    set_default_client(c)
    try:
        keys = [cached_funcs.compute.cache_key(*a, **k) for a, k in cached_funcs.CALLS]
        pids = [cached_funcs.compute(*a, **k) for a, k in cached_funcs.CALLS]
        assert set(pids) == {os.getpid()}
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        procs = []
        for seed in ("1", "2", "random"):
            monkeypatch.setenv("PYTHONHASHSEED", seed)  # str and set hashing differ per child
            monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, *sys.path]))
            p = ctx.Process(target=_decorated_in_child, args=(cachekitd_socket, namespace, results))
            p.start()
            procs.append(p)
        for _ in procs:
            kind, child_keys, child_pids, seed = results.get(timeout=WATCHDOG_S)
            assert kind == "ok", child_pids
            assert child_keys == keys, f"PYTHONHASHSEED={seed}"
            assert child_pids == pids  # every call was a hit on the parent's result
        for p in procs:
            p.join(WATCHDOG_S)
    finally:
        set_default_client(None)
        c.close()

"""The Python half of scripts/bench: get latency of a 100-byte value from Python, side by side,
against the cachekitd, redis-server and memcached that the Rust half (cachekit-bench) already
filled with scripts/bench-hit's keys and values (`hit-0`..`hit-9999`, 100 random bytes each).

Subjects: cachekit_shm get_raw (the bytes, no serializer), redis-py GET (one connection, plain
and pipelined ×100), pymemcache get, diskcache get (filled here, same keys and values), and a
dict. Each is timed one call at a time with perf_counter_ns (the figures include one clock
read pair, reported as `timer`), keys in bench-hit's shuffled order, in interleaved rounds;
each percentile is the median over the rounds. Prints one JSON document on stdout.

Encrypted hits (``"encryption"`` in the JSON): get_raw of 100 B, 4 KiB and 64 KiB random values
from three clients of the same daemon: one plain, one with ``encryption_key`` and its default
memo of opened values (a hit whose stored bytes did not change returns the plaintext opened
before), one with ``encryption_memo_bytes=0`` (every hit authenticated and decrypted); each on
its own namespace filled here (the two encrypted ones share one); timed in the same interleaved
rounds as the side by side. The working sets fit the default memo (1 MiB: about half of it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from typing import Callable, Dict, List

M64 = (1 << 64) - 1
# (value size, keys) of the encrypted-hit rows: working sets that fit half the default memo of
# opened values (1 MiB; an entry holds the envelope and the plaintext); 64 KiB values are over
# the memo's 16 KiB cap, so that row opens every hit with or without it.
ENCRYPTION_SIZES = [(100, 1_000), (4096, 60), (65536, 100)]
ENCRYPTION_KEY = bytes(range(32))  # a fixed benchmark key


def splitmix(state: List[int]) -> int:
    state[0] = (state[0] + 0x9E3779B97F4A7C15) & M64
    z = state[0]
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def hit_values(n: int, size: int) -> List[bytes]:
    s = [size]
    return [bytes(splitmix(s) & 0xFF for _ in range(size)) for _ in range(n)]


def hit_order(n: int, size: int) -> List[int]:
    order = list(range(n))
    s = [~size & M64]
    for i in range(n - 1, 0, -1):
        j = splitmix(s) % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def summarize(xs: List[int]) -> Dict[str, float]:
    xs.sort()
    n = len(xs)
    q = lambda p: float(xs[int(round((n - 1) * p))])  # noqa: E731
    return {"ops": n, "p50_ns": q(0.5), "p90_ns": q(0.9), "p99_ns": q(0.99), "p999_ns": q(0.999),
            "max_ns": float(xs[-1]), "mean_ns": sum(xs) / n}


def median(v: List[float]) -> float:
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def time_calls(op: Callable[[int], object], order: List[int], n: int) -> Dict[str, float]:
    """Times n calls of op(key index), keys in `order`, after n/10 untimed ones."""
    clock = time.perf_counter_ns
    m = len(order)
    for i in range(n // 10):
        op(order[i % m])
    xs = [0] * n
    for i in range(n):
        k = order[i % m]
        t0 = clock()
        op(k)
        xs[i] = clock() - t0
    return summarize(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--ns", default="v100")
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ops", type=int, default=50_000, help="timed calls per round, in-memory subjects")
    ap.add_argument("--slow-ops", type=int, default=10_000, help="timed calls per round, over a socket")
    ap.add_argument("--redis-port", type=int)
    ap.add_argument("--memcached-port", type=int)
    a = ap.parse_args()

    import cachekit_shm

    n = a.keys
    keys = [f"hit-{i}".encode() for i in range(n)]
    values = hit_values(n, 100)
    order = hit_order(n, 100)
    versions = {"python": platform.python_version(), "cachekit_shm": cachekit_shm.__version__}

    ck = cachekit_shm.Client(socket=a.socket, namespace=a.ns, serializer=None)
    for i in range(n):
        assert ck.get_raw(keys[i]) == values[i], f"cachekit key {i}"
    assert ck.get_raw_with_info(keys[0])[1].source == "segment"
    subjects: Dict[str, Dict] = {}

    def add(sid: str, label: str, group: str, fn: Callable[[], Dict[str, float]], batch: int = 1) -> None:
        subjects.setdefault(sid, {"id": sid, "label": label, "group": group, "batch": batch, "rounds": [],
                                  "fn": fn})

    add("cachekit", "cachekit_shm get_raw (Python)", "cachekit",
        lambda: time_calls(lambda i: ck.get_raw(keys[i]), order, a.ops))
    # The same values set and read through the default serializer (what `Client()` does).
    ck_default = cachekit_shm.Client(socket=a.socket, namespace=f"{a.ns}-default")
    for i in range(n):
        ck_default.set(keys[i], values[i])
    for i in range(n):
        assert ck_default.get(keys[i]) == values[i], f"cachekit (default serializer) key {i}"
    add("cachekit_get", "cachekit_shm get (default serializer)", "cachekit",
        lambda: time_calls(lambda i: ck_default.get(keys[i]), order, a.ops))

    # Encrypted against plain hits, by value size.
    enc_subjects: List[Dict] = []
    enc_clients = []
    for size, count in ENCRYPTION_SIZES:
        e_keys = [f"enc-{size}-{i}".encode() for i in range(count)]
        blob = random.Random(size).randbytes(size * count)  # random: nothing for LZ4 to shrink
        e_values = [blob[i * size:(i + 1) * size] for i in range(count)]
        e_order = hit_order(count, size)
        for encrypted, memo in ((False, False), (True, True), (True, False)):
            ns = f"py-{'aes' if encrypted else 'plain'}-{size}"
            extra = {"encryption_memo_bytes": 0} if encrypted and not memo else {}
            c = cachekit_shm.Client(socket=a.socket, namespace=ns, serializer=None,
                                    encryption_key=ENCRYPTION_KEY if encrypted else None, **extra)
            enc_clients.append(c)
            if memo or not encrypted:
                for k, v in zip(e_keys, e_values):
                    c.set_raw(k, v)
            for k, v in zip(e_keys, e_values):
                assert c.get_raw(k) == v, f"{ns} {k!r}"
            assert c.get_raw_with_info(e_keys[0])[1].source == "segment"
            ops = a.ops if size <= 4096 else a.ops // 4
            enc_subjects.append({
                "value_bytes": size, "encrypted": encrypted, "memo": memo, "rounds": [],
                "fn": (lambda c=c, ks=e_keys, o=e_order, n=ops: time_calls(lambda i: c.get_raw(ks[i]), o, n)),
            })

    if a.redis_port:
        import redis

        versions["redis-py"] = redis.__version__
        try:
            import hiredis  # noqa: F401

            versions["hiredis"] = hiredis.__version__
        except ImportError:
            versions["hiredis"] = None
        r = redis.Redis(host="127.0.0.1", port=a.redis_port)
        for i in range(n):
            assert r.get(keys[i]) == values[i], f"redis key {i}"
        add("redis", "redis-py GET (one connection)", "redis",
            lambda: time_calls(lambda i: r.get(keys[i]), order, a.slow_ops))

        def pipelined(i: int) -> None:
            p = r.pipeline(transaction=False)
            for j in range(100):
                p.get(keys[order[(i + j) % n]])
            res = p.execute()
            assert res[0] is not None

        add("redis_pipe", "redis-py GET (pipelined ×100, per GET)", "redis",
            lambda: time_calls(pipelined, list(range(0, n, 100)), max(a.slow_ops // 20, 50)), batch=100)

    if a.memcached_port:
        try:
            import pymemcache
            from pymemcache.client.base import Client as MC

            versions["pymemcache"] = pymemcache.__version__
            mc = MC(("127.0.0.1", a.memcached_port), no_delay=True)
            for i in range(n):
                assert mc.get(keys[i]) == values[i], f"memcached key {i}"
            add("memcached", "pymemcache get", "memcached",
                lambda: time_calls(lambda i: mc.get(keys[i]), order, a.slow_ops))
        except ImportError:
            print("side_by_side.py: pymemcache not installed, left out", file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="cachekit-bench-diskcache.")
    try:
        import diskcache

        versions["diskcache"] = diskcache.__version__
        dc = diskcache.Cache(tmp)
        for i in range(n):
            dc.set(keys[i], values[i])
        for i in range(n):
            assert dc.get(keys[i]) == values[i]
        add("diskcache", "diskcache get", "diskcache",
            lambda: time_calls(lambda i: dc.get(keys[i]), order, a.ops // 2))

        d = dict(zip(keys, values))
        add("dict", "dict get (one process only)", "in-process",
            lambda: time_calls(lambda i: d.get(keys[i]), order, a.ops))

        timer_rounds = []
        for rnd in range(a.rounds):
            print(f"[side_by_side.py] round {rnd + 1} of {a.rounds}", file=sys.stderr, flush=True)
            timer_rounds.append(time_calls(lambda i: None, order, a.ops)["p50_ns"])
            for s in subjects.values():
                s["rounds"].append(s["fn"]())
            for s in enc_subjects:
                s["rounds"].append(s["fn"]())
        dc.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ck.close()
    for c in enc_clients:
        c.clear()
        c.close()

    rows = []
    for s in subjects.values():
        b = s["batch"]
        row = {k: median([r[k] for r in s["rounds"]]) / (1 if k == "ops" else b) for k in s["rounds"][0]}
        row["ops"] = s["rounds"][0]["ops"]
        row.update(id=s["id"], label=s["label"], group=s["group"], lang="python", batch=b,
                   p50_rounds_ns=[r["p50_ns"] / b for r in s["rounds"]])
        rows.append(row)
    encryption = []
    for s in enc_subjects:
        row = {k: median([r[k] for r in s["rounds"]]) for k in s["rounds"][0]}
        row.update(value_bytes=s["value_bytes"], encrypted=s["encrypted"], memo=s["memo"],
                   p50_rounds_ns=[r["p50_ns"] for r in s["rounds"]])
        encryption.append(row)
    json.dump({"rows": rows, "encryption": encryption, "timer_ns": median(timer_rounds), "versions": versions,
               "pid": os.getpid()}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()

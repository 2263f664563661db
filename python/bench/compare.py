"""Get-hit latency of a 100-byte value, side by side in one run: cachekit_shm (bytes, and a
pickled value through the default serializer, sync and async), redis-py GET against a
redis-server started here on a free loopback port, diskcache, and a Python dict.

    pip install ./python -r python/bench/requirements.txt
    python python/bench/compare.py [--n 50000]

Needs redis-server on PATH (scripts/setup installs it) and a cachekitd (target/release, else
target/ci, or $CACHEKITD_BIN). Each figure is the per-call p50 / p99 over --n calls after a
warm-up, minus the cost of reading the clock; one process, one thread, one key.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import daemon, free_port, sample  # noqa: E402

VALUE = bytes(range(100))


def pickled_100() -> bytes:
    """A bytes object whose pickle (protocol 5) is exactly 100 bytes: what get() reads."""
    for n in range(100):
        if len(pickle.dumps(b"v" * n, protocol=5)) == 100:
            return b"v" * n
    raise AssertionError("no such length")


@contextmanager
def redis_server() -> Iterator[int]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed (scripts/setup installs it)")
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="cachekit-bench-redis.")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", tmp, "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        r = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 20
        while True:
            try:
                r.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.02)
        r.close()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def async_sample(client, key: str, n: int) -> Dict[str, float]:
    """`sample` for `await client.get(key)` inside one running loop."""

    async def run() -> Dict[str, float]:
        clock = time.perf_counter_ns
        get = client.get
        for _ in range(5000):
            await get(key)
        base_xs = []
        for _ in range(20000):
            t0 = clock()
            base_xs.append(clock() - t0)
        base = sorted(base_xs)[10000]
        xs = [0] * n
        for i in range(n):
            t0 = clock()
            await get(key)
            xs[i] = clock() - t0
        xs.sort()
        pct = lambda q: max(0.0, (xs[min(n - 1, int(q * n))] - base) / 1000)  # noqa: E731
        return {"p50": pct(0.5), "p99": pct(0.99), "mean": max(0.0, sum(xs) / n - base) / 1000}

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50_000, help="timed calls per subject")
    args = ap.parse_args()
    n = args.n

    import diskcache
    import redis

    import cachekit_shm

    rows: List[Tuple[str, Dict[str, float]]] = []
    with ExitStack() as stack:
        sock = stack.enter_context(daemon())
        port = stack.enter_context(redis_server())

        raw = stack.enter_context(cachekit_shm.Client(socket=sock, namespace="bench", serializer=None))
        pickled = stack.enter_context(cachekit_shm.Client(socket=sock, namespace="bench"))
        raw.set_raw("k100", VALUE)
        pickled.set("p100", pickled_100())
        assert raw.get_raw("k100") == VALUE and len(pickled.get_raw("p100")) == 100
        assert pickled.get_with_info("p100")[1].source == "segment"
        rows.append(("cachekit_shm get_raw (bytes)", sample(lambda: raw.get_raw("k100"), n)))
        rows.append(("cachekit_shm get (pickle)", sample(lambda: pickled.get("p100"), n)))
        aclient = cachekit_shm.AsyncClient.from_client(pickled)
        asyncio.run(aclient.get("p100"))  # learns the key: later gets are served inline
        rows.append(("cachekit_shm AsyncClient.get", async_sample(aclient, "p100", n)))

        r = redis.Redis(host="127.0.0.1", port=port)
        r.set("k100", VALUE)
        assert r.get("k100") == VALUE
        rows.append(("redis-py GET (loopback TCP)", sample(lambda: r.get("k100"), max(n // 5, 5000), warmup=1000)))
        r.close()

        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="cachekit-bench-diskcache."))
        dc = diskcache.Cache(tmp)
        dc.set("k100", VALUE)
        assert dc.get("k100") == VALUE
        rows.append(("diskcache get", sample(lambda: dc.get("k100"), n)))
        dc.close()

        d = {"k100": VALUE}
        rows.append(("dict get", sample(lambda: d.get("k100"), n)))

    ref = rows[0][1]["p50"]
    redis_p50 = next(s["p50"] for name, s in rows if name.startswith("redis"))
    print(f"get-hit of a 100-byte value; Python {platform.python_version()}, redis-py {redis.__version__}, "
          f"diskcache {diskcache.__version__}, cachekit_shm {cachekit_shm.__version__} (libcachekit "
          f"{cachekit_shm.version()}), {os.cpu_count()} CPUs")
    print(f"{'':<30} {'p50 µs':>8} {'p99 µs':>8}   {'p50 / cachekit raw':>18} {'redis-py / p50':>15}")
    for name, s in rows:
        rel = s["p50"] / ref if ref else float("nan")
        speedup = redis_p50 / s["p50"] if s["p50"] else float("inf")
        print(f"{name:<30} {s['p50']:8.2f} {s['p99']:8.2f}   {rel:17.2f}x {speedup:14.0f}x")


if __name__ == "__main__":
    main()

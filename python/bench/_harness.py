"""Shared by the benchmarks: a private cachekitd, a free port, and a latency sampler."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List

REPO = Path(__file__).resolve().parents[2]


def cachekitd_bin() -> str:
    b = os.environ.get("CACHEKITD_BIN")
    if b:
        return b
    for profile in ("release", "ci"):
        p = REPO / "target" / profile / "cachekitd"
        if p.exists():
            return str(p)
    raise SystemExit("no cachekitd: build it (cargo build --release -p cachekitd) or set CACHEKITD_BIN")


@contextmanager
def daemon(extra: List[str] = ()) -> Iterator[str]:
    """Starts cachekitd in a temp dir under its own instance; yields its socket path."""
    tmp = tempfile.mkdtemp(prefix="cachekit-bench.")
    instance = f"bench-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEKIT_")}
    log = open(os.path.join(tmp, "cachekitd.log"), "wb")
    proc = subprocess.Popen([cachekitd_bin(), "--dir", tmp, "--instance", instance, "--log", "warn", *extra],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    sock = os.path.join(tmp, f"{instance}.sock")
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("cachekitd did not start:\n" + open(log.name).read())
            time.sleep(0.01)
        yield sock
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample(op: Callable[[], object], n: int = 50_000, warmup: int = 5_000) -> Dict[str, float]:
    """Per-call latency of `op` in microseconds: p50, p99 and mean, minus the cost of the
    timer itself (measured the same way around a no-op)."""
    clock = time.perf_counter_ns

    def run(f: Callable[[], object], count: int) -> List[int]:
        out = [0] * count
        for i in range(count):
            t0 = clock()
            f()
            out[i] = clock() - t0
        return out

    def nop() -> None:
        return None

    run(op, warmup)
    base = sorted(run(nop, 20_000))[10_000]
    xs = sorted(run(op, n))
    pct = lambda q: max(0.0, (xs[min(len(xs) - 1, int(q * len(xs)))] - base) / 1000)  # noqa: E731
    return {"p50": pct(0.50), "p99": pct(0.99), "mean": max(0.0, sum(xs) / len(xs) - base) / 1000}

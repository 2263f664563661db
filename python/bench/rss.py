"""What a worker's memory figures say about the shared segment: a worker that reads N MiB of
cached values shows them in its RSS (resident pages it has mapped, shared ones included) but
not in its USS (pages only it holds); its PSS counts each shared page divided by the number of
processes that map it. So recycle workers by PSS or USS (`smem`, /proc/PID/smaps_rollup),
never by RSS, or every worker looks as if it held the cache.

    python python/bench/rss.py [--mib 64] [--workers 2]

Needs a cachekitd (target/release, else target/ci, or $CACHEKITD_BIN). Prints, per worker,
the change of Rss, Pss and USS (Private_Clean + Private_Dirty) from /proc/self/smaps_rollup
across reading every value once, in kB.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import daemon  # noqa: E402

VALUE = 64 * 1024  # incompressible values of 64 KiB: the segment holds them as they are


def rollup() -> Dict[str, int]:
    out = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    out["Uss"] = out["Private_Clean"] + out["Private_Dirty"]
    return out


def worker(sock: str, count: int, start: "multiprocessing.synchronize.Barrier", out: "multiprocessing.Queue") -> None:
    from cachekit_shm import Client

    with Client(socket=sock, namespace="rss", serializer=None) as c:
        c.get_raw("warm-up")  # maps the segment, loads the library
        start.wait()
        before = rollup()
        total = 0
        for i in range(count):
            v = c.get_raw(f"v{i}")
            assert v is not None and len(v) == VALUE, i
            total += len(v)
            del v
        after = rollup()
        start.wait()  # every worker measured while all of them still map the segment
        out.put((os.getpid(), total, {k: after[k] - before[k] for k in ("Rss", "Pss", "Uss")}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    count = args.mib * 1024 * 1024 // VALUE
    with daemon(["--memory", f"{args.mib * 2 + 64}MiB"]) as sock:
        from cachekit_shm import Client

        with Client(socket=sock, namespace="rss", serializer=None) as c:
            for i in range(count):
                c.set_raw(f"v{i}", os.urandom(VALUE))
        ctx = multiprocessing.get_context("spawn")
        start, out = ctx.Barrier(args.workers), ctx.Queue()
        procs = [ctx.Process(target=worker, args=(sock, count, start, out)) for _ in range(args.workers)]
        for p in procs:
            p.start()
        results = [out.get(timeout=300) for _ in procs]
        for p in procs:
            p.join()
    print(f"{args.workers} workers, each reading {args.mib} MiB of values once from the segment:")
    for pid, total, delta in results:
        print(f"  worker {pid}: read {total >> 20} MiB; RSS +{delta['Rss']} kB, "
              f"PSS +{delta['Pss']} kB, USS +{delta['Uss']} kB")


if __name__ == "__main__":
    main()

"""Where a Python hit's time goes: `Client.get_raw` / `Client.get` of a 100-byte value taken
apart, every row measured in one process against one private cachekitd, in interleaved rounds.

    python bench/hit_breakdown.py [--rounds 5] [--ops 50000]     (after pip install ./python)

Keys, values and order are scripts/bench's (benches/python/side_by_side.py: ``hit-0`` ..
``hit-9999``, 100 random bytes, its shuffled order) and each Python row is timed the way that
script times it: one ``perf_counter_ns`` pair around a call of ``op(key index)``, so a row
includes the clock pair and the lambda call (the ``timer`` row is that alone). Rows:

- ``C hit``: ``cachekit_get`` timed in C (``clock_gettime`` pair per call) over the same keys,
  from a small extension compiled here: the floor under every Python row.
- ``cffi cachekit_get_len``: the bare binding call into the thread's buffer (no bytes made).
- ``cffi call + view[:n]``: the same, plus the bytes object: what ``get_raw`` did through cffi.
- ``_hit.hit``: the C call ``get_raw`` makes (cachekit_shm/_hit.c), key in, bytes out.
- ``get_raw`` / ``get (pickle)``: as users call them (``get`` on values written by ``set``).
- ``pickle.loads``: of one stored pickled value (what ``get`` adds to ``get_raw``).
- ``dict get``: ``d.get(key)`` of the same keys and values.

Prints a table of each row's median p50 over the rounds, and its p50 per round.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "benches" / "python"))

from _harness import daemon  # noqa: E402
from side_by_side import hit_order, hit_values, median, time_calls  # noqa: E402

C_LOOP = r"""
#include <stdint.h>
#include <stddef.h>
#include <time.h>
#include "cachekit.h"
static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
/* Times n gets of keys[order[i % m]], after n/10 untimed ones; out[i] is each one's ns. */
int64_t c_hits(const cachekit_client *c, const uint8_t *const *keys, const size_t *lens,
               const int64_t *order, size_t m, size_t n, int64_t *out) {
  static uint8_t buf[16384];
  size_t len;
  int64_t bad = 0;
  for (size_t i = 0; i < n / 10; i++) {
    size_t k = (size_t)order[i % m];
    bad += cachekit_get(c, keys[k], lens[k], buf, sizeof buf, &len, NULL) != CACHEKIT_OK;
  }
  for (size_t i = 0; i < n; i++) {
    size_t k = (size_t)order[i % m];
    int64_t t0 = now_ns();
    bad += cachekit_get(c, keys[k], lens[k], buf, sizeof buf, &len, NULL) != CACHEKIT_OK;
    out[i] = now_ns() - t0;
  }
  return bad;
}
"""


def c_loop_module(tmp: str):
    """The compiled C timing loop, linked with the installed package's libcachekit.so.0."""
    import cffi
    import cachekit_shm

    pkg = Path(cachekit_shm.__file__).resolve().parent
    ffi = cffi.FFI()
    ffi.cdef("int64_t c_hits(void *c, const uint8_t *const *keys, const size_t *lens, "
             "const int64_t *order, size_t m, size_t n, int64_t *out);")
    ffi.set_source("_hit_breakdown_c", C_LOOP, include_dirs=[str(REPO / "include")],
                   extra_objects=[str(pkg / "libcachekit.so.0")],
                   extra_link_args=[f"-Wl,-rpath,{pkg}"], extra_compile_args=["-O2"])
    ffi.compile(tmpdir=tmp, verbose=False)
    sys.path.insert(0, tmp)
    import _hit_breakdown_c  # type: ignore[import-not-found]

    return _hit_breakdown_c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ops", type=int, default=50_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--only", default="", help="comma-separated row names to run (default: all)")
    a = ap.parse_args()

    import cachekit_shm
    from cachekit_shm import client as cm
    from cachekit_shm._native import ffi, lib

    n = a.keys
    keys = [f"hit-{i}".encode() for i in range(n)]
    values = hit_values(n, 100)
    order = hit_order(n, 100)
    with tempfile.TemporaryDirectory() as tmp, daemon(["--memory", "256MiB"]) as sock:
        cmod = c_loop_module(tmp)
        raw = cachekit_shm.Client(socket=sock, namespace="v100", serializer=None)
        dflt = cachekit_shm.Client(socket=sock, namespace="v100-default")
        for k, v in zip(keys, values):
            raw.set_raw(k, v)
            dflt.set(k, v)
        for k, v in zip(keys, values):
            assert raw.get_raw(k) == v and dflt.get(k) == v
            assert raw.get_raw_with_info(k)[1].source == "segment"
        ptr = raw._live()
        addr = int(ffi.cast("uintptr_t", ptr))
        get_len = lib.cachekit_get_len
        try:  # absent from a cachekit_shm older than the C hit path: its row is left out
            from cachekit_shm._hit import hit
        except ImportError:
            hit = None
        NULL = ffi.NULL
        buf, cap, _, view, _ = cm._new_scratch()[:5]
        d = dict(zip(keys, values))
        pickled = dflt.get_raw(keys[0])
        loads = pickle.loads

        ckeys = [ffi.new("uint8_t[]", k) for k in keys]
        ckeys_arr = ffi.new("uint8_t *[]", ckeys)
        clens = ffi.new("size_t[]", [len(k) for k in keys])
        corder = ffi.new("int64_t[]", order)
        cout = ffi.new("int64_t[]", a.ops)

        def c_hits() -> Dict[str, float]:
            bad = cmod.lib.c_hits(ptr, ckeys_arr, clens, corder, len(order), a.ops, cout)
            assert bad == 0, f"{bad} C gets did not hit"
            xs = sorted(cout[0:a.ops])
            return {"p50_ns": float(xs[len(xs) // 2])}

        def view_call(i: int) -> bytes:
            k = keys[i]
            return view[:get_len(ptr, k, len(k), buf, cap, NULL)]

        rows: Dict[str, Callable[[], Dict[str, float]]] = {
            "timer (clock pair + lambda)": lambda: time_calls(lambda i: None, order, a.ops),
            "dict get": lambda: time_calls(lambda i: d.get(keys[i]), order, a.ops),
            "C hit (cachekit_get, in C)": c_hits,
            "cffi cachekit_get_len": lambda: time_calls(
                lambda i: get_len(ptr, keys[i], len(keys[i]), buf, cap, NULL), order, a.ops),
            "cffi call + view[:n]": lambda: time_calls(view_call, order, a.ops),
            **({} if hit is None else {"_hit.hit (C call to bytes)": lambda: time_calls(
                lambda i: hit(addr, keys[i], 0), order, a.ops)}),
            "Client.get_raw": lambda: time_calls(lambda i: raw.get_raw(keys[i]), order, a.ops),
            "Client.get (pickle)": lambda: time_calls(lambda i: dflt.get(keys[i]), order, a.ops),
            "pickle.loads (one value)": lambda: time_calls(lambda i: loads(pickled), order, a.ops),
        }
        if a.only:
            want = a.only.split(",")
            rows = {k: v for k, v in rows.items() if any(w in k for w in want)}
        res: Dict[str, List[float]] = {k: [] for k in rows}
        for rnd in range(a.rounds):
            for name, fn in rows.items():
                res[name].append(fn()["p50_ns"])
        raw.close()
        dflt.close()
    load = open("/proc/loadavg").read().split()[:3]
    print(f"p50 per call, ns: median of {a.rounds} interleaved rounds of {a.ops} calls, "
          f"{n} keys (load average {' '.join(load)})")
    for name, xs in res.items():
        print(f"{name:<30} {median(xs):7.0f}   rounds: {' '.join(f'{x:.0f}' for x in xs)}")


if __name__ == "__main__":
    main()

"""Issue 17's write-side rows and targets for docs/PERFORMANCE.md (imported by report.py): set
throughput of 8 client processes (single sets, set_many batches) beside Redis SET with 8
clients, and the hit latency while a writer process evicts at full rate (cachekit-bench's
"writes" section, benches/src/writes.rs)."""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

Target = Dict[str, object]


def fmt_rate(r: object) -> str:
    return "—" if not isinstance(r, (int, float)) else f"{r / 1000:,.0f}k/s"


def fmt_cpu(c: object) -> str:
    if not isinstance(c, dict) or c.get("server_user_us_per_set") is None:
        return "—"
    return f"{c['server_user_us_per_set']:.1f} + {c['server_kernel_us_per_set']:.1f} µs"


def writes(rust: Dict, fmt_ns: Callable, fmt_x: Callable, table: Callable) -> Tuple[List[Target], List[str]]:
    """The target (target, measured, met) and the lines of the section; none without the data.
    The hit latency while evicting is a row, not a target: the issue sets no bound for it."""
    wr = rust.get("writes")
    if not wr:
        return [], []
    rates = wr["sets_per_s"]
    redis = rates.get("redis_set")
    n = wr["processes"]
    targets: List[Target] = []
    best = max(rates["set"], rates["set_many"])
    targets.append({
        "target": f"set throughput with {n} client processes ≥ Redis SET with {n} clients",
        "measured": f"single sets {fmt_rate(rates['set'])}, set_many of {wr['batch']} "
                    f"{fmt_rate(rates['set_many'])}; Redis SET {fmt_rate(redis)}",
        "met": bool(redis and rates["set"] >= redis),
    })
    hw = wr["hit_while_evicting"]
    idle, busy = hw["idle"], hw["evicting"]
    ratio = (lambda a, b: a / b if a and b else None)
    cpu = wr.get("server_cpu") or {}
    lines = ["### Writes: set throughput, and hits while the daemon evicts", "",
             table(["subject", "sets per second", "vs Redis SET", "server CPU per set (user + kernel)"], [
                 [f"cachekit `set`, {n} processes (one request per set)", fmt_rate(rates["set"]),
                  fmt_x(ratio(rates["set"], redis)), fmt_cpu(cpu.get("set"))],
                 [f"cachekit `set_many`, {n} processes ({wr['batch']} items per request)",
                  fmt_rate(rates["set_many"]), fmt_x(ratio(rates["set_many"], redis)), fmt_cpu(cpu.get("set_many"))],
                 [f"Redis SET, `redis-benchmark -c {n} -t set -d {wr['value_bytes']}`", fmt_rate(redis), "1.00×",
                  fmt_cpu(cpu.get("redis_set"))],
             ]),
             "",
             f"{n} processes of `cachekit-bench write-worker` each store {wr['ops_per_process']:,} values of "
             f"{wr['value_bytes']} bytes (keys of their own) through one daemon, timed from a common start to "
             "the last one's end (best of three runs); Redis: redis-benchmark's 8 connections, same value size, "
             "same run, best of three. Single sets are one socket round trip each; `set_many` carries "
             f"{wr['batch']} in one request, applied within one turn of the daemon's writer. The server's CPU "
             "per set is the change of cachekitd's (or redis-server's) user and kernel time over the best run "
             "(`/proc/PID/stat`), divided by the sets it served.",
             "",
             table(["hot-key get (100 B)", "p50", "p90", "p99", "p99.9", "misses", "gets"], [
                 ["no writer", fmt_ns(idle["p50_ns"]), fmt_ns(idle["p90_ns"]), fmt_ns(idle["p99_ns"]),
                  fmt_ns(idle["p999_ns"]), str(hw["idle_misses"]), f"{idle['ops']:,}"],
                 ["a writer process setting at full rate (evicting)", fmt_ns(busy["p50_ns"]),
                  fmt_ns(busy["p90_ns"]), fmt_ns(busy["p99_ns"]), fmt_ns(busy["p999_ns"]),
                  str(hw["evicting_misses"]), f"{busy['ops']:,}"],
             ]),
             "",
             f"A daemon of `--memory {hw['memory']}` filled with 200,000 values of {hw['value_bytes']} bytes, "
             f"then {hw['hot_keys']:,} hot keys read in a loop for {hw['writer_ms'] - 300} ms with no writer, "
             f"and as long again while one writer process sets new keys as fast as it can "
             f"({fmt_rate(hw['writer_sets_per_s'])} sets per second, {hw['evictions']:,} entries evicted meanwhile). "
             "Every get is timed (clock pair included); a hot key eviction took would be a local miss "
             "(no second tier), counted apart.",
             ""]
    return targets, lines

"""Issue 17's read-side rows and targets for docs/PERFORMANCE.md (imported by report.py): a hit
against a same-process HashMap (10k and 1M entries, p50 and plain-loop mean), the Python hit
(get_raw and get), a miss without a second tier, and the arena overhead per entry."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

Target = Dict[str, object]


def hit_vs_map_points(rust: Dict) -> List[Tuple[int, Dict]]:
    """(entries, hit_vs_map) for 10k (side by side) and each table size, smallest first."""
    pts = []
    sbs = rust["side_by_side"]
    if sbs.get("hit_vs_map"):
        pts.append((sbs["keys"], sbs["hit_vs_map"]))
    for p in rust["table_size"]["points"]:
        if p.get("hit_vs_map"):
            pts.append((p["entries"], p["hit_vs_map"]))
    return sorted(pts, key=lambda x: x[0])


def issue17(rust: Dict, py: Dict, fmt_ns: Callable, fmt_x: Callable, count_label: Callable,
            table: Callable) -> Tuple[List[Target], str]:
    """The targets (target, measured, met) and the markdown of the section."""
    targets: List[Target] = []
    pts = dict(hit_vs_map_points(rust))
    largest = max(pts) if pts else None
    checked = [n for n in (10_000, largest) if n in pts]
    worst = [max(pts[n]["ratio_p50"], pts[n]["ratio_loop_mean"]) for n in checked]
    targets.append({
        "target": "Rust/C hit of 100 B ≤ 1.5× a same-process std HashMap get + copy of the same keys, at "
                  "10k and 1M entries, p50 and plain-loop mean",
        "measured": "; ".join(
            f"{count_label(n)}: {fmt_x(pts[n]['ratio_p50'])} p50 ({fmt_ns(pts[n]['client']['p50_ns'])} vs "
            f"{fmt_ns(pts[n]['hashmap']['p50_ns'])}), {fmt_x(pts[n]['ratio_loop_mean'])} plain-loop mean "
            f"({fmt_ns(pts[n]['client_loop_mean_ns'])} vs {fmt_ns(pts[n]['hashmap_loop_mean_ns'])})"
            for n in checked) or "–",
        "met": bool(worst) and max(worst) <= 1.5,
    })
    prows = {r["id"]: r for r in py.get("rows", [])}
    raw, get, redis = prows.get("cachekit"), prows.get("cachekit_get"), prows.get("redis")
    p50 = lambda r: r and r["p50_ns"]  # noqa: E731
    r_redis = (redis["p50_ns"] / get["p50_ns"]) if (redis and get) else None
    targets.append({
        "target": "Python `get_raw` of 100 B ≤ 600 ns p50, `get` (default serializer) ≤ 900 ns, i.e. ≥ 30× a "
                  "redis-py GET (same run)",
        "measured": f"get_raw {fmt_ns(p50(raw))}, get {fmt_ns(p50(get))} p50 (each includes the "
                    f"{fmt_ns(py.get('timer_ns'))} perf_counter_ns pair); redis-py GET ÷ get: {fmt_x(r_redis)}",
        "met": bool(raw and get and raw["p50_ns"] <= 600 and get["p50_ns"] <= 900
                    and r_redis is not None and r_redis >= 30),
    })
    rrows = {r["id"]: r for r in rust["side_by_side"]["rust"]}
    miss, hit = rrows.get("cachekit_miss_local"), rrows.get("cachekit")
    r_miss = (miss["p50_ns"] / hit["p50_ns"]) if (miss and hit) else None
    targets.append({
        "target": "A miss with no second tier answered from the segment (no request), within 2× a hit",
        "measured": f"{fmt_ns(p50(miss))} p50 against a hit's {fmt_ns(p50(hit))}: {fmt_x(r_miss)} (no request "
                    "sent: the harness asserts it)",
        "met": r_miss is not None and r_miss <= 2,
    })
    mem = rust["table_size"]["memory"]
    per = mem and mem.get("used_bytes_per_entry")
    targets.append({
        "target": "Arena overhead per 100 B entry stays ≤ 161 B (arena bytes used per entry)",
        "measured": f"{per:.0f} B per entry at {mem['live_entries']:,} entries (section 6)" if per else "–",
        "met": bool(per and per <= 161.5),
    })

    rows = []
    for n, p in sorted(pts.items()):
        rows.append([count_label(n), fmt_ns(p["client"]["p50_ns"]), fmt_ns(p["hashmap"]["p50_ns"]),
                     fmt_x(p["ratio_p50"]), fmt_ns(p["client_loop_mean_ns"]), fmt_ns(p["hashmap_loop_mean_ns"]),
                     fmt_x(p["ratio_loop_mean"])])
    text = table(["entries", "cachekit p50", "HashMap p50", "p50 ratio", "cachekit plain-loop mean",
                  "HashMap plain-loop mean", "plain-loop ratio"], rows) if rows else "(not measured)"
    text += (
        "\n\nThe Rust client's `get_into` of a 100-byte value against a std `HashMap<Vec<u8>, Vec<u8>>` "
        "get + copy into a reused `Vec`, same keys, same values, same shuffled order, in the same process and "
        "interleaved rounds (10k: bench-hit's keys in the side-by-side daemon; the others: the table-size "
        "daemons' 16-byte keys). The p50 is timed one get at a time (clock pair included); the plain-loop "
        "mean is a loop of the same gets timed as a whole in the thread's CPU time (a loop's wall time on "
        "this shared machine is mostly other processes' time slices). Back-to-back HashMap lookups overlap "
        "their cache misses in a plain loop; the gap between the two ratios is what a cachekit hit does not "
        "overlap."
    )
    return targets, text


def hit_ratio_target(hr: List[Dict]) -> Target:
    """Section 8's rows as issue 17's target: within 1 point of the better of quick_cache and moka."""
    def gap(r: Dict) -> float:
        return max(r["quick_cache"]["core_ratio"], r["moka"]["core_ratio"]) - r["cachekit"]["core_ratio"]

    return {
        "target": "Hit ratio within 1 point of the better of quick_cache and moka on the Zipf(0.99) and scan "
                  "traces, both capacities, a hit writing at most one bit",
        "measured": "; ".join(
            f"{r['trace']} {r['capacity']:,}: {r['cachekit']['core_ratio']:.3f} vs "
            f"{max(r['quick_cache']['core_ratio'], r['moka']['core_ratio']):.3f} "
            f"({'behind' if gap(r) > 0 else 'ahead'} {abs(gap(r)) * 100:.1f})"
            for r in hr) or "–",
        "met": bool(hr) and all(gap(r) <= 0.01 for r in hr),
    }


def issue17_why(targets: List[Target], rust: Dict, py: Dict, c_hit_ns: Optional[float],
                fmt_ns: Callable, count_label: Callable) -> List[str]:
    """For each of issue 17's targets this run missed, the measured reason."""
    out = []
    missed = [str(t["target"]) for t in targets if not t["met"]]
    if any(t.startswith("Rust/C hit") for t in missed):
        pts = [p for p in rust["table_size"]["points"] if p.get("hit_vs_map")]
        small, big = (pts[0], pts[-1]) if pts else (None, None)
        alone = (
            f" The table alone (no client: no heartbeat check, envelope or clock) costs "
            f"{fmt_ns(small['table_only']['get_hit']['p50_ns'])} p50 and "
            f"{fmt_ns(small['table_only']['loop_mean_ns'])} plain-loop mean at {count_label(small['entries'])} "
            f"entries against the HashMap's {fmt_ns(small['hit_vs_map']['hashmap']['p50_ns'])} and "
            f"{fmt_ns(small['hit_vs_map']['hashmap_loop_mean_ns'])}, and at {count_label(big['entries'])} "
            f"{fmt_ns(big['table_only']['get_hit']['p50_ns'])} against "
            f"{fmt_ns(big['hit_vs_map']['hashmap']['p50_ns'])}." if small else "")
        out.append(
            "**Hit within 1.5× of a HashMap**: the work per hit, not a fence." + alone + " Counted with "
            "callgrind (2026-12-06), a client hit is about 1,800 instructions: the lookup about 1,150 (the "
            "value copy ~200, the entry's check ~140, the rest hashing, bounds checks, tag references and "
            "counters), the envelope's decode ~250, the clock read ~150, the segment guard (`arc-swap`) ~110; "
            "a HashMap get and copy is a few hundred. A chain that long fills the CPU's reorder window, so one "
            "hit's cache misses cannot overlap the next's: that is why cachekit's plain-loop mean stays at its "
            "p50 while the HashMap's falls to a fraction of its own. Without the clock read a hit is about 11% "
            "cheaper (an unsafe probe build), and the precise clock is the only one that proves a deadline or "
            "the heartbeat has not passed. At 1M entries the segment maps hundreds of MiB sparsely: the "
            "bucket and the entry are each a TLB and DRAM miss, which huge pages would cut, but this host "
            "offers none (shmem THP `never`, `nr_hugepages` 0). The entry's lines, generation word and access "
            "bit are prefetched as soon as a slot's fingerprint matches.")
    if any(t.startswith("Python") for t in missed):
        rows = {r["id"]: r for r in py.get("rows", [])}
        raw, get = rows.get("cachekit"), rows.get("cachekit_get")
        over = (f" In this run `get_raw` costs {fmt_ns(raw['p50_ns'] - c_hit_ns)} over a C hit's "
                f"{fmt_ns(c_hit_ns)}" + (f" and `get` {fmt_ns(get['p50_ns'] - c_hit_ns)}" if get else "") + "."
                if raw and c_hit_ns else "")
        out.append(
            "**Python 600 / 900 ns**: the library's hit, not the binding." + over + " A hit is one call of "
            "the `_hit` C extension over the C ABI (a vectorcall, the key read in place, one bytes object); "
            "what is left of the Python side is the perf_counter_ns pair, the method call and the bytes "
            "object (`python/bench/hit_breakdown.py` times each part)."
            + (f" With that overhead `get_raw` at 600 ns needs a C hit of {fmt_ns(600 - (raw['p50_ns'] - c_hit_ns))} "
               "or less; the C hit is what the row above measures." if raw and c_hit_ns else ""))
    if any(t.startswith("set") for t in missed):
        cpu = (rust.get("writes") or {}).get("server_cpu") or {}
        ck, rd = cpu.get("set") or {}, cpu.get("redis_set") or {}
        figures = (
            f" In this run cachekitd spent {ck['server_user_us_per_set']:.1f} µs of user and "
            f"{ck['server_kernel_us_per_set']:.1f} µs of kernel time per SET, redis-server "
            f"{rd['server_user_us_per_set']:.1f} and {rd['server_kernel_us_per_set']:.1f} µs."
            if ck.get("server_user_us_per_set") is not None and rd.get("server_user_us_per_set") is not None
            else "")
        out.append(
            "**8-process set throughput against Redis**: the kernel's work per request, not the table." + figures +
            " Each SET is one round trip of two syscalls on each side (`strace -c -f`: the client's send and "
            "receive, the daemon's receive and send), and the table's lock is rarely contended (about 2% of the "
            "daemon's user time, measured with perf); a thread per connection pays a wakeup and a switch per "
            "request, where Redis's one event loop answers several clients per wakeup. An epoll loop in the "
            "daemon is the lever; `set_many` (one request, one lock turn for many) is the answer for bulk "
            "writes today.")
    if any(t.startswith("Hit ratio") for t in missed):
        out.append(
            "**Hit ratio**: see section 8 for the row that trails and why.")
    return out


def issue17_section(targets: List[Target], text: str, table: Callable, verdict: Callable,
                    why: List[str]) -> List[str]:
    """The lines of the report's section."""
    out = ["## Issue 17: the read side against its floor", "",
           table(["target", "measured (this run)", "met?"],
                 [[str(t["target"]), str(t["measured"]), verdict(t["met"])] for t in targets], "llc"),
           ""]
    if why:
        out += ["Why the misses miss:", ""] + [f"- {line}" for line in why] + [""]
    out += ["### Hit against a same-process HashMap", "", text, ""]
    return out

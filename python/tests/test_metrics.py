"""The daemon's metrics endpoint (--metrics-listen), scraped with the Prometheus project's own
OpenMetrics parser while three client processes work: the host-wide hits per namespace add up
to what the processes counted themselves, and a fourth process that scribbles garbage over its
own counters file (and over the whole shared client area) crashes nothing and changes none of
the others' figures. Each process is handed a counters file of its own, and only that one: the
others' are not mapped in it (that a client under another uid cannot open them through /proc
either is tested in sidecar/tests/client_area.rs)."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import struct
import time
import urllib.request

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

WORKERS = 3
NAMESPACES = ("m-alpha", "m-beta")
KEYS = 40
WATCHDOG_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict:
    """{(family, sample name, frozen labels): value} of one scrape, parsed as OpenMetrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text"), r.headers
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(family.name, s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _ns_value(scrape: dict, sample: str, ns: str) -> float:
    return sum(v for (_, name, labels), v in scrape.items() if name == sample and ("namespace", ns) in labels)


def _worker(index: int, sock: str, start, done, results) -> None:
    """Reads both namespaces (a different number of times each), counting hits and misses."""
    from cachekit_shm import Client

    try:
        counted = {ns: [0, 0] for ns in NAMESPACES}
        clients = [Client(socket=sock, namespace=ns, serializer=None) for ns in NAMESPACES]
        start.wait(WATCHDOG_S)
        for rnd in range(3 + index):
            for c, ns in zip(clients, NAMESPACES):
                for k in range(KEYS + 5 * (index + 1)):  # keys past KEYS are misses
                    hit = c.get_raw(f"k{k}") is not None
                    counted[ns][0 if hit else 1] += 1
        # One counters file for the process, whichever client of it mapped it.
        inodes = {ino for _, _, ino in _mappings(os.getpid(), "cachekit-counters")}
        for c in clients:
            c.close()
        results.put((index, "ok", (counted, inodes)))
        done.wait(WATCHDOG_S)
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        import traceback

        results.put((index, "error", f"{e!r}\n{traceback.format_exc()}"))


def _mappings(pid: int, name: str) -> list:
    """(address, length, inode) of each writable mapping of memfd `name` in process `pid`."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == f"/memfd:{name}" and fields[1].startswith("rw"):
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                out.append((lo, hi - lo, int(fields[4])))
    return out


def _scribbler(sock: str, go, results) -> None:
    """Attaches, then writes random bytes over every byte of its own counters file and of the
    shared client area (where every process's counters used to be)."""
    from cachekit_shm import Client

    try:
        with Client(socket=sock, namespace="m-scribbler", serializer=None) as c:
            c.set_raw("x", b"y")
            assert c.get_raw("x") == b"y"
            counters = _mappings(os.getpid(), "cachekit-counters")
            # The daemon sent this process its own file and no other's.
            assert len(counters) == 1, counters
            (base, length, inode), = counters
            (area, area_len, _), = _mappings(os.getpid(), "cachekit-clients")
            go.wait(WATCHDOG_S)
            with open("/proc/self/mem", "r+b", buffering=0) as mem:
                for _ in range(20):
                    mem.seek(base)
                    mem.write(os.urandom(length))
                    mem.seek(area)
                    mem.write(os.urandom(area_len))
                    time.sleep(0.02)
            for _ in range(100):
                c.get_raw("x")
        results.put(("scribbler", "ok", inode))
    except BaseException as e:  # noqa: BLE001
        import traceback

        results.put(("scribbler", "error", f"{e!r}\n{traceback.format_exc()}"))


@pytest.mark.timeout(WATCHDOG_S)
def test_host_wide_hits_per_namespace_add_up_and_a_scribbler_changes_only_its_own(make_daemon) -> None:
    from cachekit_shm import Client

    port = _free_port()
    d = make_daemon("--metrics-listen", f"127.0.0.1:{port}")
    for ns in NAMESPACES:
        with Client(socket=d.socket, namespace=ns, serializer=None) as c:
            for k in range(KEYS):
                c.set_raw(f"k{k}", b"v" * 16)
    before = _scrape(port)  # counts nothing of the workers yet, but names both namespaces

    ctx = mp.get_context("spawn")
    start, done, go = ctx.Barrier(WORKERS + 1), ctx.Barrier(WORKERS + 1), ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(i, d.socket, start, done, results)) for i in range(WORKERS)]
    procs.append(ctx.Process(target=_scribbler, args=(d.socket, go, results)))
    for p in procs:
        p.start()
    try:
        go.wait(WATCHDOG_S)
        start.wait(WATCHDOG_S)
        during = _scrape(port)  # mid-workload: parses, and the daemon answers
        assert ("cachekit_hits", "cachekit_hits_total", (("namespace", "m-alpha"),)) in during
        got = [results.get(timeout=WATCHDOG_S) for _ in procs]
        errors = [r for r in got if r[1] != "ok"]
        assert not errors, errors
        # The workers are still alive (their records live): the sums hold now...
        counted = {ns: [0, 0] for ns in NAMESPACES}
        files = {}
        for index, _, r in got:
            if index == "scribbler":
                files[index] = {r}
                continue
            c, files[index] = r
            for ns in NAMESPACES:
                counted[ns][0] += c[ns][0]
                counted[ns][1] += c[ns][1]
        # Every process counted into one file of its own.
        assert all(len(f) == 1 for f in files.values()), files
        assert len(set().union(*files.values())) == len(procs), files
        live = _scrape(port)
        done.wait(WATCHDOG_S)
    finally:
        for p in procs:
            p.join(WATCHDOG_S)
    # ... and after they exited (their records folded into the daemon's totals).
    deadline = time.monotonic() + 10
    while True:
        after = _scrape(port)
        # Only this (live) test process keeps a record: the workers' were freed.
        if after[("cachekit_client_processes", "cachekit_client_processes", ())] == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for scrape, when in ((live, "while the workers live"), (after, "after they exited")):
        for ns in NAMESPACES:
            hits = _ns_value(scrape, "cachekit_hits_total", ns) - _ns_value(before, "cachekit_hits_total", ns)
            misses = _ns_value(scrape, "cachekit_misses_total", ns) - _ns_value(before, "cachekit_misses_total", ns)
            assert (hits, misses) == tuple(counted[ns]), (ns, when, hits, misses, counted[ns])
    assert after[("cachekit_client_processes", "cachekit_client_processes", ())] == 1
    # The scribbler damaged its file's header and the area's: counted, repaired; the daemon
    # still serves.
    assert after[("cachekit_stat", "cachekit_stat", (("name", "client_area_damaged"),))] >= 1
    assert d.proc is not None and d.proc.poll() is None, d.log()
    with Client(socket=d.socket, namespace=NAMESPACES[0], serializer=None) as c:
        assert c.get_raw("k0") == b"v" * 16
    # The same text through the socket (what `cachekit stats --format openmetrics` prints).
    families = {f.name for f in text_string_to_metric_families(_metrics_via_socket(d.proc.args[0], d.socket))}
    for name in ("cachekit_hits", "cachekit_misses", "cachekit_namespace_entries", "cachekit_memory_used_bytes", "cachekit_build_info"):
        assert name in families, (name, families)


def _metrics_via_socket(daemon_bin: str, sock: str) -> str:
    """The METRICS request through the CLI binary next to cachekitd."""
    import subprocess

    cli = os.path.join(os.path.dirname(daemon_bin), "cachekit")
    if not os.access(cli, os.X_OK):
        raise AssertionError(f"no cachekit CLI at {cli}: build it with cargo build -p cachekit-cli --profile ci")
    r = subprocess.run([cli, "--socket", sock, "stats", "--format", "openmetrics"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_non_loopback_metrics_address_is_refused_with_what_to_do(make_daemon, tmp_path) -> None:
    import subprocess

    daemon_bin = make_daemon().proc.args[0]
    r = subprocess.run(
        [daemon_bin, "--dir", str(tmp_path), "--metrics-listen", "0.0.0.0:9464"],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 2, r
    assert "--metrics-allow-remote" in r.stderr, r.stderr

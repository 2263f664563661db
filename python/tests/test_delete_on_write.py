"""The delete-on-write race, at application level (issue 13).

A "database" (sqlite, one row holding a version number) read by 4 reader processes and
updated by a writer. The writer updates the row, then invalidates the cached copy, then
publishes the version it invalidated. A reader that starts a read after that publication must
never get an older version: that is a stale read, and the entry behind it stays until the
next write.

- The old pattern (``get`` → miss → read the database → ``set``) produces such reads: a
  reader that read the old row before the update stores it after the invalidation.
- ``query`` (and Django's ``get_or_set`` through it) does not: the fill's lease began before
  the invalidation, so the daemon refuses to store it as fresh.

Each reader sleeps between reading the row and storing it (the time an application spends
building the object) a little longer than the writer's period, so every fill of the old
pattern overlaps a write: its count of stale reads does not depend on the machine's timing
(with a window shorter than the period it sometimes showed none). The counts are printed.
"""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time

READERS = 4
RUN_S = 3.0
WRITE_PERIOD_S = 0.01
WORK_S = 0.015  # between reading the row and storing it: longer than WRITE_PERIOD_S
KEY = "row:1"
TAG = "rows/1"


def _db_version(path: str) -> int:
    db = sqlite3.connect(path, timeout=30)
    try:
        return db.execute("SELECT version FROM rows WHERE id = 1").fetchone()[0]
    finally:
        db.close()


def _reader(index, mode, sock, namespace, db_path, published, ready, stop, results):
    try:
        stale = 0
        reads = 0
        stale_writes = set()  # the writes whose invalidation a stale entry outlived
        if mode == "django":
            import django
            from django.conf import settings

            settings.configure(CACHES={"default": {
                "BACKEND": "cachekit_shm.django.CachekitCache", "LOCATION": sock,
                "OPTIONS": {"namespace": namespace}}})
            django.setup()
            from django.core.cache import cache
        else:
            from cachekit_shm import Client

            c = Client(socket=sock, namespace=namespace)

        def from_db():
            v = _db_version(db_path)
            time.sleep(WORK_S)
            return v

        first = True
        while not stop.is_set():
            floor = published.value  # every write up to this one is invalidated already
            if mode == "old":
                v = c.get(KEY)
                if v is None:
                    v = from_db()
                    c.set(KEY, v, tags=[TAG])
            elif mode == "query":
                v = c.query(KEY, from_db, tags=[TAG])
            else:
                v = cache.get_or_set(KEY, from_db, timeout=None)
            reads += 1
            if first:  # set up and reading: the writer may start
                first = False
                with ready.get_lock():
                    ready.value += 1
            if v < floor:
                stale += 1
                stale_writes.add(floor)
        results.put((index, "ok", (reads, stale, stale_writes)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        import traceback

        results.put((index, "error", f"{e!r}\n{traceback.format_exc()}"))


def _run(mode: str, sock: str, namespace: str, tmp_path) -> tuple:
    from cachekit_shm import Client

    db_path = str(tmp_path / f"{mode}.sqlite")
    db = sqlite3.connect(db_path, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, version INTEGER)")
    db.execute("INSERT INTO rows VALUES (1, 0)")
    db.commit()
    ctx = mp.get_context("spawn")
    published = ctx.Value("q", 0, lock=False)
    ready = ctx.Value("i", 0)
    stop = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=_reader, args=(i, mode, sock, namespace, db_path, published, ready, stop, results))
             for i in range(READERS)]
    for p in procs:
        p.start()
    writes = 0
    django_key = f":1:{KEY}"  # Django's make_key: KEY_PREFIX "", VERSION 1
    with Client(socket=sock, namespace=namespace) as c:
        # Every reader is up and has read once (spawn imports, and Django's setup, take
        # seconds on a loaded machine), bounded: a reader that failed reports its error.
        deadline = time.monotonic() + 120
        while ready.value < READERS and time.monotonic() < deadline and results.empty():
            time.sleep(0.02)
        end = time.monotonic() + RUN_S
        while time.monotonic() < end:
            writes += 1
            db.execute("UPDATE rows SET version = ? WHERE id = 1", (writes,))
            db.commit()
            if mode == "django":
                c.delete(django_key)  # what cache.delete(KEY) sends
            else:
                c.invalidate(TAG)
            published.value = writes
            time.sleep(WRITE_PERIOD_S)
        stop.set()
        out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    db.close()
    errors = [o for o in out if o[1] == "error"]
    assert not errors, errors[0][2]
    reads = sum(o[2][0] for o in out)
    stale = sum(o[2][1] for o in out)
    stale_writes = len(set().union(*(o[2][2] for o in out)))
    return writes, reads, stale, stale_writes


def test_old_pattern_serves_stale_rows_query_and_get_or_set_never(cachekitd_socket, tmp_path, capsys):
    counts = {}
    for mode in ("old", "query", "django"):
        counts[mode] = _run(mode, cachekitd_socket, f"race-{mode}-{time.monotonic_ns()}", tmp_path)
    with capsys.disabled():
        for mode, (writes, reads, stale, stale_writes) in counts.items():
            print(f"\ndelete-on-write race, {mode:>6}: {writes} writes, {reads} reads, {stale} stale reads "
                  f"(after {stale_writes} of the writes)")
    assert counts["old"][2] > 0, "the old pattern lost no race: widen WORK_S so the test shows it"
    assert counts["query"][2] == 0
    assert counts["django"][2] == 0
    for writes, reads, _, _ in counts.values():
        assert writes >= 20 and reads >= 100  # the run did something (counts vary with load)

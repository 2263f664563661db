"""cachekit_shm.cachekit_backend.CachekitShmBackend under the real ``cachekit`` PyPI package:
its protocol checks, its ``@cache`` decorator in one process and across processes, its
stale-while-revalidate and TTL-refresh paths, and its error classification."""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest

cachekit = pytest.importorskip("cachekit")

from cachekit import cache  # noqa: E402
from cachekit.backends.base import BaseBackend, TTLInspectableBackend  # noqa: E402
from cachekit.backends.errors import BackendError, BackendErrorType  # noqa: E402
from cachekit.config.nested import L1CacheConfig  # noqa: E402

from _helpers import wait_until  # noqa: E402

from cachekit_shm import Client  # noqa: E402
from cachekit_shm.cachekit_backend import CachekitShmBackend  # noqa: E402

WATCHDOG_S = 60
NO_L1 = L1CacheConfig(enabled=False)  # so a second call must come from the backend


@pytest.fixture
def namespace():
    return f"ck-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def backend(cachekitd_socket, namespace):
    with CachekitShmBackend(socket=str(cachekitd_socket), namespace=namespace) as b:
        yield b
        b.client.clear()


# -- the protocol ---------------------------------------------------------------------------


def test_implements_cachekits_protocols(backend):
    assert isinstance(backend, BaseBackend)
    assert isinstance(backend, TTLInspectableBackend)
    from cachekit.cache_handler import supports_swr, supports_ttl_inspection

    assert supports_ttl_inspection(backend) and supports_swr(backend)


def test_bytes_round_trip_with_str_and_bytes_keys(backend):
    assert backend.get("missing") is None
    assert backend.exists("missing") is False
    backend.set("k", b"\x00value\xff")
    assert backend.get("k") == b"\x00value\xff"
    assert backend.get(b"k") == b"\x00value\xff"
    assert backend.exists("k") is True
    assert backend.delete("k") is True
    assert backend.delete("k") is False
    assert backend.get("k") is None
    backend.set("empty", b"")
    assert backend.get("empty") == b"" and backend.exists("empty")


def test_ttl_convention_is_cachekits(backend):
    # cachekit's Redis backend: None, 0 or negative store without expiry.
    for i, ttl in enumerate([None, 0, -5]):
        backend.set(f"forever{i}", b"v", ttl=ttl)
        assert backend.get(f"forever{i}") == b"v"
    backend.set("short", b"v", ttl=1)
    hit = backend.client.get_with_info("short")
    assert hit is not None and hit[1].expires_ms > 0


def test_health_check(backend, cachekitd_socket):
    healthy, details = backend.health_check()
    assert healthy is True
    assert details["backend_type"] == "cachekit_shm"
    assert details["latency_ms"] >= 0


def test_health_check_reports_a_missing_daemon(tmp_path):
    b = CachekitShmBackend(socket=str(tmp_path / "none.sock"), lazy=True)
    try:
        healthy, details = b.health_check()
        assert healthy is False
        assert details["backend_type"] == "cachekit_shm" and details["latency_ms"] == -1
        assert details["error"]
        # Gets miss while the daemon is down; writes raise cachekit's TRANSIENT error.
        assert b.get("k") is None
        with pytest.raises(BackendError) as err:
            b.set("k", b"v")
        assert err.value.error_type == BackendErrorType.TRANSIENT
    finally:
        b.close()


def test_built_while_the_daemon_is_down_gets_miss_then_attaches(make_daemon):
    # As in a worker process that starts while cachekitd restarts: building the backend must
    # not raise, gets miss, and once the daemon is up the same backend works.
    d = make_daemon()
    d.stop()
    b = CachekitShmBackend(socket=d.socket, namespace=f"ck-{uuid.uuid4().hex[:12]}")
    try:
        assert b.get("k") is None
        with pytest.raises(BackendError):
            b.set("k", b"v")
        d.start()
        wait_until(lambda: _set_ok(b, "k", b"v"), what="the backend to reach the restarted daemon")
        assert b.get("k") == b"v"
    finally:
        b.close()


def _set_ok(b, key, value) -> bool:
    try:
        b.set(key, value)
        return True
    except BackendError:
        return False


def test_limit_errors_are_permanent(backend):
    with pytest.raises(BackendError) as err:
        backend.set("k", b"x" * (64 << 20))
    assert err.value.error_type == BackendErrorType.PERMANENT
    assert err.value.operation == "set"


def test_a_given_client_must_be_raw_and_stays_open(cachekitd_socket, namespace):
    with Client(socket=str(cachekitd_socket), namespace=namespace, serializer=None) as client:
        b = CachekitShmBackend(client)
        b.set("k", b"v")
        b.close()
        assert client.get_raw("k") == b"v"
    with pytest.raises(ValueError):
        CachekitShmBackend(socket=str(cachekitd_socket), serializer="pickle")
    with pytest.raises(TypeError):
        CachekitShmBackend(object(), namespace="x")


async def test_get_ttl_and_refresh_ttl(backend):
    assert await backend.get_ttl("missing") is None
    assert await backend.refresh_ttl("missing", 60) is False
    backend.set("k", b"v", ttl=100)
    assert 98 <= await backend.get_ttl("k") <= 100
    assert await backend.refresh_ttl("k", 1000) is True
    assert 998 <= await backend.get_ttl("k") <= 1000
    assert backend.get("k") == b"v"
    backend.set("forever", b"v")
    assert await backend.get_ttl("forever") is None


def test_freshness_follows_the_grace_period(backend):
    backend.set("k", b"v", ttl=100, stale_ttl=50)
    value, stale, fresh_for = backend.get_with_freshness("k")
    assert (value, stale) == (b"v", False) and 98 <= fresh_for <= 100
    hit = backend.client.get_with_info("k")
    assert hit[1].grace_until_ms - hit[1].expires_ms == 50_000
    backend.set("forever", b"v")
    assert backend.get_with_freshness("forever") == (b"v", False, None)
    assert backend.get_with_freshness("missing") is None


def test_a_stale_entry_is_served_stale(backend):
    backend.set("k", b"old", ttl=1, stale_ttl=60)
    deadline = time.monotonic() + WATCHDOG_S
    while True:
        value, stale, fresh_for = backend.get_with_freshness("k")
        if stale:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert (value, fresh_for) == (b"old", 0)


# -- the @cache decorator ------------------------------------------------------------------


def test_second_call_is_served_from_shared_memory(backend):
    calls = []

    @cache(backend=backend, ttl=60, l1=NO_L1)
    def square(x):
        calls.append(x)
        return {"square": x * x}

    assert square(12) == {"square": 144}
    before = backend.client.stats()
    assert square(12) == {"square": 144}
    after = backend.client.stats()
    assert calls == [12]
    # The second call was one read of the shared segment by this client: no miss, no fetch
    # from the daemon.
    delta = {k: after[k] - before[k] for k in ("client.segment_hits", "client.segment_misses",
                                               "client.fetches")}
    assert delta == {"client.segment_hits": 1, "client.segment_misses": 0, "client.fetches": 0}
    assert square(13) == {"square": 169}
    assert calls == [12, 13]
    square.invalidate_cache(12)
    assert square(12) == {"square": 144}
    assert calls == [12, 13, 12]


async def test_async_function_is_served_by_cachekitd(backend):
    calls = []

    @cache(backend=backend, ttl=60, l1=NO_L1)
    async def double(x):
        calls.append(x)
        return x * 2

    assert await double(21) == 42
    assert await double(21) == 42
    assert calls == [21]


_ran = []


def _record_keys(backend, monkeypatch):
    """The keys cachekit writes through `backend`, in order."""
    keys = []
    set_ = backend.set

    def recording_set(key, *args, **kwargs):
        keys.append(key)
        return set_(key, *args, **kwargs)

    monkeypatch.setattr(backend, "set", recording_set)
    return keys


def test_stale_while_revalidate_uses_the_grace_period(backend, monkeypatch):
    keys = _record_keys(backend, monkeypatch)
    calls = []

    @cache(backend=backend, ttl=1, stale_ttl=60, l1=NO_L1)
    def generation(x):
        calls.append(x)
        return len(calls)

    assert generation(1) == 1
    (key,) = keys
    assert backend.client.get_with_info(key)[1].grace_until_ms > backend.client.get_with_info(key)[1].expires_ms
    wait_until(lambda: backend.get_with_freshness(key)[1], WATCHDOG_S, "the entry to go stale")
    # Past its TTL, within grace: the stale value at once, and a refresh in the background.
    assert generation(1) == 1
    wait_until(lambda: len(calls) == 2, WATCHDOG_S, "the background refresh")
    wait_until(lambda: generation(1) == 2, WATCHDOG_S, "the refreshed value")
    assert len(calls) == 2


def test_encrypted_values_pass_through_as_ciphertext(backend, monkeypatch):
    keys = _record_keys(backend, monkeypatch)
    secret = "the answer is forty-two"

    @cache.secure(master_key="ab" * 32, backend=backend, ttl=60, l1=NO_L1)
    def confidential():
        return secret

    assert confidential() == secret
    assert confidential() == secret
    (key,) = keys
    stored = backend.get(key)
    assert stored and secret.encode() not in stored


def _compute_in_child(socket, namespace, x, queue):
    """In a fresh process: call the decorated function; report its result, whether its body
    ran, and how many shared-memory hits the backend's client made."""
    b = CachekitShmBackend(socket=socket, namespace=namespace)

    @cache(backend=b, ttl=60, namespace="cross-process")
    def slow_square(x):
        _ran.append(x)
        return x * x

    result = slow_square(x)
    queue.put((result, len(_ran), b.client.stats()["client.segment_hits"]))
    b.close()


def test_result_computed_in_one_process_is_a_hit_in_another(cachekitd_socket, namespace):
    ctx = multiprocessing.get_context("spawn")
    results = []
    for _ in range(2):
        queue = ctx.Queue()
        proc = ctx.Process(target=_compute_in_child, args=(str(cachekitd_socket), namespace, 7, queue))
        proc.start()
        try:
            results.append(queue.get(timeout=WATCHDOG_S))
            proc.join(WATCHDOG_S)
            assert proc.exitcode == 0
        finally:
            if proc.is_alive():
                proc.kill()
    # The first process computed it (its one segment hit is track_key reading back the entry
    # it just wrote, to tag it); the second, with an empty L1, read it from the segment.
    assert results == [(49, 1, 1), (49, 0, 1)]


# -- whole-function invalidation reaches every process ------------------------------------------


def _function_in_child(socket, namespace, actions, queue):
    """In a fresh process with no L1: run `actions` on two decorated functions (("call", name,
    x) or ("invalidate", name)); report the calls whose body ran here."""
    b = CachekitShmBackend(socket=socket, namespace=namespace)
    ran = []

    @cache(backend=b, ttl=300, namespace="host-wide", l1=NO_L1)
    def square(x):
        ran.append(("square", x))
        return x * x

    @cache(backend=b, ttl=300, namespace="host-wide", l1=NO_L1)
    def cube(x):
        ran.append(("cube", x))
        return x * x * x

    functions = {"square": square, "cube": cube}
    for action in actions:
        if action[0] == "call":
            functions[action[1]](action[2])
        else:
            functions[action[1]].invalidate_cache()
    queue.put(ran)
    b.close()


def _in_child(socket, namespace, actions):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_function_in_child, args=(socket, namespace, actions, queue))
    proc.start()
    try:
        ran = queue.get(timeout=WATCHDOG_S)
        proc.join(WATCHDOG_S)
        assert proc.exitcode == 0
        return ran
    finally:
        if proc.is_alive():
            proc.kill()


def test_invalidate_cache_without_arguments_reaches_every_process(cachekitd_socket, namespace):
    socket = str(cachekitd_socket)
    calls = [("call", "square", 1), ("call", "square", 2), ("call", "cube", 1)]
    assert _in_child(socket, namespace, calls) == [("square", 1), ("square", 2), ("cube", 1)]
    assert _in_child(socket, namespace, calls) == []  # shared: all hits in another process
    # A third process that never wrote or read square's entries drops all of them...
    assert _in_child(socket, namespace, [("invalidate", "square")]) == []
    # ... so a fourth computes square again, and cube (another function) is still cached.
    assert _in_child(socket, namespace, calls) == [("square", 1), ("square", 2)]
    assert _in_child(socket, namespace, calls) == []


def test_track_key_tags_the_entry_and_keeps_its_ttl_and_grace(backend):
    backend.set("k", b"v", ttl=100, stale_ttl=50)
    before = backend.client.get_with_info("k")[1]
    backend.track_key("ck:reg:ns:00ff", "k")
    after = backend.client.get_with_info("k")[1]
    assert backend.get("k") == b"v"
    assert abs(after.expires_ms - before.expires_ms) < 1000
    assert after.grace_until_ms - after.expires_ms == 50_000
    backend.set("forever", b"f")
    backend.track_key("ck:reg:ns:00ff", "forever")
    assert backend.client.get_with_info("forever")[1].expires_ms == 0
    backend.set("other", b"o")
    backend.track_key("ck:reg:ns:00ff/x", "other")  # another function: its entry stays
    backend.track_key("ck:reg:ns:00ff", "missing")  # nothing to tag: no error
    backend.set("local", b"l")
    assert backend.drain_tracked("ck:reg:ns:00ff", ["local"]) == {"local"}
    assert backend.get("k") is None and backend.get("forever") is None
    assert backend.get("local") is None
    assert backend.get("other") == b"o"

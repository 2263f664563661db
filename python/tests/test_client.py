"""The synchronous Client against a real cachekitd: values, TTL and grace, tags, namespaces,
batches, counters, threads, and the handle's lifecycle."""

from __future__ import annotations

import gc
import os
import threading
import time
from datetime import timedelta

import pytest
from _helpers import wait_until

from cachekit_shm import (
    CachekitError,
    Client,
    ClosedError,
    Info,
    InvalidArgumentError,
    Pong,
    TooLargeError,
)


def test_set_then_get_reads_shared_memory(client):
    client.set("user:42", {"name": "Ada", "langs": ["en", "fr"]}, ttl=60)
    assert client.get("user:42") == {"name": "Ada", "langs": ["en", "fr"]}
    value, info = client.get_with_info("user:42")
    assert value == {"name": "Ada", "langs": ["en", "fr"]}
    assert info.source == "segment" and not info.stale


def test_miss_returns_default(client):
    assert client.get("nothing") is None
    assert client.get("nothing", "fallback") == "fallback"
    assert client.get_raw("nothing") is None
    assert client.get_with_info("nothing") is None


def test_str_and_bytes_keys_are_the_same_key(client):
    client.set("clé", 1)
    assert client.get("clé".encode()) == 1
    client.set(b"\xff\x00binary", 2)
    assert client.get(b"\xff\x00binary") == 2
    assert client.get(bytearray(b"\xff\x00binary")) == 2


def test_keys_the_hit_path_hands_back_are_converted_as_before(client):
    # Client.get's C hit path (cachekit_shm._hit) takes str and bytes; other keys go through
    # the Python conversion, with its errors.
    client.set(memoryview(b"mv-key"), "m")
    assert client.get(memoryview(b"mv-key")) == "m" and client.get_raw(bytearray(b"mv-key")) is not None
    assert client.get_local(bytearray(b"mv-key")) == "m"
    with pytest.raises(UnicodeEncodeError):
        client.get("lone \ud800 surrogate")
    with pytest.raises(UnicodeEncodeError):
        client.get_raw("lone \ud800 surrogate")
    with pytest.raises(TypeError, match="str or bytes"):
        client.get_raw(None)


def test_counters_read_as_ints_from_every_get(client):
    client.incr("n", 41)
    client.incr("n")
    assert client.get("n") == 42 and client.get_local("n") == 42
    assert client.get_raw("n") == b"42"
    client.set("neg", -(1 << 63))
    assert client.get("neg") == -(1 << 63)


def test_raw_bytes_in_and_out(client, raw_client):
    raw_client.set_raw("r", b"\x00\x01 plain bytes")
    assert raw_client.get_raw("r") == b"\x00\x01 plain bytes"
    assert raw_client.get("r") == b"\x00\x01 plain bytes"  # serializer=None: get is get_raw
    client.set_raw("e", b"")
    assert client.get_raw("e") == b""


@pytest.mark.parametrize("size", [0, 100, 16 << 10, (16 << 10) + 1, 300 << 10, 1 << 20])
def test_values_of_every_size(raw_client, size):
    # Around the per-thread buffer (16 KiB) as it grows, up to the session daemon's 1 MiB.
    value = os.urandom(size)
    raw_client.set_raw(f"v{size}", value)
    assert raw_client.get_raw(f"v{size}") == value
    assert raw_client.get_raw_with_info(f"v{size}")[0] == value
    assert raw_client.get_many_raw([f"v{size}"]) == {f"v{size}": value}
    assert raw_client.get_local(f"v{size}") == value


def test_a_thread_buffer_grown_for_a_large_value_serves_the_next_ones(raw_client):
    # Values over the hit path's 16 KiB go through the thread's buffer: grown once, then
    # reused (a buffer per get doubled the time of a 20 KB get).
    from cachekit_shm import client as client_module

    values = {f"big{i}": os.urandom((20 << 10) + i) for i in range(3)}
    for k, v in values.items():
        raw_client.set_raw(k, v)
    assert raw_client.get_raw("big0") == values["big0"]
    grown = client_module._tls.s
    assert grown[1] >= 20 << 10
    for _ in range(3):
        for k, v in values.items():
            assert raw_client.get_raw(k) == v
            assert raw_client.get_local(k) == v
    assert client_module._tls.s is grown, "the grown buffer was kept, not made again"


def test_values_as_large_as_the_daemon_allows(make_daemon, namespace):
    d = make_daemon("--max-value-bytes", "4MiB")
    with Client(socket=d.socket, namespace=namespace, serializer=None) as c:
        value = os.urandom(3 << 20)
        c.set_raw("3mib", value)
        assert c.get_raw("3mib") == value
        data, info = c.get_raw_with_info("3mib")
        assert data == value and info.source == "segment"
        assert c.get_local("3mib") == value
        assert c.get_many_raw(["3mib"]) == {"3mib": value}
        with pytest.raises(TooLargeError, match="max_value_bytes = 4194304"):
            c.set_raw("over", os.urandom((4 << 20) + 1))
    # A client opened lazily (as after fork) adopts the limit on its first write too.
    with Client(socket=d.socket, namespace=namespace, serializer=None, lazy=True) as c:
        c.set_raw("3mib-lazy", value)
        assert c.get_raw("3mib-lazy") == value


def test_a_default_daemon_refuses_2_mib(raw_client):
    with pytest.raises(TooLargeError, match=r"max_value_bytes = 1048576 .*--max-value-bytes"):
        raw_client.set_raw("2mib", os.urandom(2 << 20))
    assert raw_client.get_raw("2mib") is None


def test_get_local_reads_shared_memory_only(client):
    client.set("k", {"v": 1}, ttl=60)
    assert client.get_local("k") == {"v": 1}
    assert client.get_local("absent") is None
    assert client.get_local("absent", "d") == "d"
    before = client.stats()["client.requests"]
    for _ in range(100):
        assert client.get_local("k") == {"v": 1}
        assert client.get_local("absent") is None
    assert client.stats()["client.requests"] == before + 1  # the second STATS only
    with pytest.raises(TooLargeError, match="max_key_bytes"):
        client.get_local("k" * 5000)
    client.close()
    with pytest.raises(ClosedError):
        client.get_local("k")


def test_get_local_of_a_lazy_client_that_never_connected(tmp_path):
    with Client(socket=str(tmp_path / "none.sock"), lazy=True) as c:
        assert c.get_local("k", "d") == "d"


def test_info_times(client):
    before = int(time.time() * 1000)
    client.set("t", "x", ttl=60, grace=timedelta(seconds=30))
    _, info = client.get_with_info("t")
    assert isinstance(info, Info)
    after = int(time.time() * 1000)
    assert before - 1000 <= info.created_ms <= after + 1000
    assert info.expires_ms - info.created_ms == 60_000
    assert info.grace_until_ms - info.expires_ms == 30_000
    client.set("forever", "x")
    _, info = client.get_with_info("forever")
    assert info.expires_ms == 0 and info.grace_until_ms == 0


def test_ttl_expires(client):
    client.set("short", "x", ttl=0.05)
    wait_until(lambda: client.get("short") is None, what="a 50 ms TTL to expire")


def test_grace_serves_stale_values(client):
    client.set("swr", "old", ttl=0.05, grace=60)
    wait_until(lambda: client.get_with_info("swr")[1].stale, what="the entry to become stale")
    value, info = client.get_with_info("swr")
    assert value == "old" and info.stale
    assert client.get("swr") == "old"  # a stale hit is a hit


def test_delete(client):
    client.set("d", 1)
    assert client.delete("d") is True
    assert client.delete("d") is False
    assert client.get("d") is None


def test_get_many_returns_hits_with_the_keys_given(client):
    client.set_many({"a": 1, b"b": 2, "c": None})
    got = client.get_many(["a", b"b", "c", "missing", b"a"])
    assert got == {"a": 1, b"b": 2, "c": None, b"a": 1}
    assert client.get_many([]) == {}
    assert client.get_many(iter(["a"])) == {"a": 1}


def test_set_many_takes_pairs_and_options(client):
    client.set_many([("p1", 1), ("p2", 2)], ttl=60, tags=["group"])
    assert client.get_many(["p1", "p2"]) == {"p1": 1, "p2": 2}
    client.invalidate("group")
    assert client.get_many(["p1", "p2"]) == {}


def test_tags_strings_and_tuples(client):
    client.set("post", "p", tags=[("posts", 123)])
    client.set("comments", "c", tags=["posts/123/comments"])
    client.set("other", "o", tags=[("posts", 1234)])
    client.invalidate(("posts", 123))
    assert client.get("post") is None
    assert client.get("comments") is None  # below posts/123
    assert client.get("other") == "o"  # posts/1234 is not below posts/123


def test_exact_invalidation_spares_children(client):
    client.set("post", "p", tags=["posts/7"])
    client.set("comments", "c", tags=["posts/7/comments"])
    client.invalidate("posts/7", exact=True)
    assert client.get("post") is None
    assert client.get("comments") == "c"


def test_invalidate_several_tags_at_once(client):
    client.set("a", 1, tags=["x/1"])
    client.set("b", 2, tags=["y/2"])
    client.set("c", 3, tags=["z/3"])
    client.invalidate("x/1", ("y", 2))
    assert client.get_many(["a", "b", "c"]) == {"c": 3}
    client.invalidate(["z/3"])
    assert client.get("c") is None
    client.invalidate()  # nothing to do


def test_one_tag_given_as_a_string(client):
    client.set("s", 1, tags="solo/tag")
    client.invalidate("solo")
    assert client.get("s") is None


def test_clear_drops_only_this_namespace(client):
    other = client.with_namespace(client.namespace + "-other")
    client.set("k", "mine")
    other.set("k", "theirs")
    client.clear()
    assert client.get("k") is None
    assert other.get("k") == "theirs"
    other.close()


def test_namespaces_are_apart_and_share_the_connection(client):
    other = client.with_namespace("elsewhere-" + client.namespace)
    assert other.namespace == "elsewhere-" + client.namespace
    assert other.serializer is client.serializer
    client.set("k", 1)
    assert other.get("k") is None
    other.set("k", 2)
    assert client.get("k") == 1
    # Closing the first handle leaves the second working (and the other way round).
    client.close()
    assert other.get("k") == 2
    other.set("k", 3)
    assert other.get("k") == 3
    other.close()


def test_stats_are_named_counters(client):
    client.set("k", 1)
    client.get("k")
    stats = client.stats()
    assert stats and all(isinstance(k, str) and isinstance(v, int) for k, v in stats.items())
    assert "daemon.table_live_entries" in stats
    assert stats["daemon.table_live_entries"] >= 1


def test_ping(client):
    pong = client.ping()
    assert isinstance(pong, Pong)
    assert pong.epoch > 0 and pong.rtt_us >= 0
    assert client.ping().epoch == pong.epoch


def test_threads_share_one_client(client):
    errors = []

    def work(i: int) -> None:
        try:
            for j in range(300):
                client.set(f"t{i}-{j % 10}", (i, j), ttl=60)
                got = client.get(f"t{i}-{j % 10}")
                assert got == (i, j), got
                assert client.get(f"t{(i + 1) % 8}-0", "none") is not None
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]


# ---- lifecycle -------------------------------------------------------------------------------------


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_close_is_idempotent_and_later_use_raises(cachekitd_socket, namespace):
    c = Client(socket=cachekitd_socket, namespace=namespace)
    c.set("k", 1)
    c.close()
    c.close()
    assert c.closed
    for call in (
        lambda: c.get("k"),
        lambda: c.get_raw("k"),
        lambda: c.get_with_info("k"),
        lambda: c.set("k", 1),
        lambda: c.set_raw("k", b"1"),
        lambda: c.delete("k"),
        lambda: c.get_many(["k"]),
        lambda: c.set_many({"k": 1}),
        lambda: c.invalidate("t"),
        lambda: c.clear(),
        lambda: c.stats(),
        lambda: c.ping(),
        lambda: c.with_namespace("x"),
    ):
        with pytest.raises(ClosedError):
            call()
    assert issubclass(ClosedError, CachekitError)


def test_context_manager_closes(cachekitd_socket, namespace):
    with Client(socket=cachekitd_socket, namespace=namespace) as c:
        c.set("k", 1)
    assert c.closed
    with pytest.raises(ClosedError):
        c.get("k")


def test_close_and_finalizer_release_the_native_handle(cachekitd_socket, namespace):
    gc.collect()
    base = _fds()
    c = Client(socket=cachekitd_socket, namespace=namespace)
    c.set("k", 1)  # a daemon connection and the mapped segment
    assert _fds() > base
    c.close()
    assert _fds() == base
    c = Client(socket=cachekitd_socket, namespace=namespace)
    assert c.get("k") == 1 and c.get_local("k") == 1  # the hit path keeps no handle past close
    c.close()
    assert _fds() == base
    c = Client(socket=cachekitd_socket, namespace=namespace)
    c.set("k", 1)
    del c  # no close(): the finalizer frees it
    gc.collect()
    assert _fds() == base


def test_close_while_other_threads_are_calling(cachekitd_socket, namespace):
    # The handle is freed when the last running call returns, never under it.
    for _ in range(5):
        c = Client(socket=cachekitd_socket, namespace=namespace)
        c.set("k", b"v" * 1000)
        outcomes = []

        def reader() -> None:
            try:
                for _ in range(1_000_000):  # until closed (a bound, as a watchdog)
                    c.get("k")
                    c.set("k2", 1)
            except ClosedError:
                outcomes.append("closed")

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.02)
        c.close()
        for t in threads:
            t.join(30)
        assert outcomes == ["closed"] * 4


def test_repr(client):
    assert "namespace=" in repr(client) and "pickle" in repr(client)
    client.close()
    assert "closed" in repr(client)


# ---- arguments -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [-1, -0.001, timedelta(seconds=-1), float("nan"), float("inf")])
def test_bad_ttl(client, ttl):  # 0 and timedelta(0) mean "never expires": test_atomic.py
    with pytest.raises(InvalidArgumentError):
        client.set("k", 1, ttl=ttl)


def test_ttl_under_a_millisecond_is_not_forever(client):
    client.set("k", 1, ttl=0.0001)  # rounds up to 1 ms, never to 0 (= no expiry)
    wait_until(lambda: client.get("k") is None, what="a 1 ms TTL to expire")


def test_bad_arguments(client):
    with pytest.raises(InvalidArgumentError):
        client.set("k", 1, grace=-1)
    with pytest.raises(TypeError):
        client.set("k", 1, ttl="60")
    with pytest.raises(TypeError):
        client.set("k", 1, ttl=True)
    with pytest.raises(TypeError, match="str or bytes"):
        client.get(42)
    with pytest.raises(TypeError, match="str or bytes"):
        client.set(None, 1)
    with pytest.raises(TypeError, match=r"tags=\[\('posts', 123\)\]"):
        client.set("k", 1, tags=("posts", 123))  # a collection of tags, and 123 is not one
    with pytest.raises(InvalidArgumentError):
        client.set("k", 1, tags=[()])
    with pytest.raises(InvalidArgumentError):
        client.set("k", 1, tags=["nul\0tag"])
    with pytest.raises(TypeError):
        client.set_raw("k", "not bytes")


def test_library_errors_carry_its_message(client):
    with pytest.raises(InvalidArgumentError) as e:
        client.set("k", 1, tags=["posts//1"])
    assert "empty segment" in str(e.value)
    assert e.value.code_name == "CACHEKIT_INVALID_ARGUMENT" and e.value.code == 4
    assert isinstance(e.value, ValueError)
    with pytest.raises(InvalidArgumentError):
        client.invalidate("a//b")


def test_limits_are_too_large_errors(client):
    with pytest.raises(TooLargeError, match="max_key_bytes"):
        client.set("k" * 5000, 1)
    with pytest.raises(TooLargeError, match="max_key_bytes"):
        client.get("k" * 5000)
    with pytest.raises(TooLargeError, match="max_tags"):
        client.set("k", 1, tags=[f"t{i}" for i in range(9)])
    with pytest.raises(InvalidArgumentError, match="9 segments"):
        client.set("k", 1, tags=["/".join("abcdefghi")])  # 9 levels deep: malformed
    with pytest.raises(TooLargeError, match="max_value_bytes"):
        client.set_raw("k", os.urandom((1 << 20) + 1))  # the session daemon's limit: 1 MiB


def test_bad_namespaces(cachekitd_socket, client):
    with pytest.raises(InvalidArgumentError):
        Client(socket=cachekitd_socket, namespace="")
    with pytest.raises(TooLargeError):
        Client(socket=cachekitd_socket, namespace="n" * 128)
    with pytest.raises(InvalidArgumentError):
        client.with_namespace("")
    with pytest.raises(InvalidArgumentError):
        client.with_namespace("a\0b")
    with pytest.raises(ValueError):
        Client(socket=cachekitd_socket, serializer="yaml")


def test_namespace_none_comes_from_the_environment(cachekitd_socket, namespace, monkeypatch):
    monkeypatch.setenv("CACHEKIT_NAMESPACE", namespace)
    with Client(socket=cachekitd_socket, namespace=None) as a, Client(socket=cachekitd_socket, namespace=namespace) as b:
        a.set("k", "via env")
        assert b.get("k") == "via env"


def test_socket_from_the_environment(cachekitd_socket, namespace, monkeypatch):
    monkeypatch.setenv("CACHEKIT_SOCKET", cachekitd_socket)
    with Client(namespace=namespace) as c:
        c.set("k", 1)
        assert c.get("k") == 1

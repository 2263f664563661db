"""The atomic and management operations of `Client` against a real cachekitd: the meaning of
each one, their bad input, and integers (a counter is read back as an int whatever the
serializer)."""

from __future__ import annotations

import math
import time
from datetime import timedelta

import pytest

from cachekit_shm import Client, InvalidArgumentError, NamespaceInfo, ScanItem


def test_add_stores_only_when_absent(client):
    assert client.add("k", {"first": 1}) is True
    assert client.add("k", {"second": 2}) is False
    assert client.get("k") == {"first": 1}
    # An invalidated entry and an expired one count as absent.
    client.set("tagged", "old", tags=["t/1"])
    client.invalidate("t")
    assert client.add("tagged", "new") is True
    client.set("short", "old", ttl=0.03)
    time.sleep(0.08)
    assert client.add("short", "new", ttl=60, tags=[("t", 2)]) is True
    assert client.get("short") == "new"
    assert 0 < client.ttl("short") <= 60


def test_replace_stores_only_when_present(client):
    assert client.replace("r", 1) is False
    assert client.get("r") is None
    client.set("r", "old")
    assert client.replace("r", "new") is True
    assert client.get("r") == "new"


def test_cas_stores_over_the_version_read_and_deletes_with_ttl_0(client):
    client.set("c", "v1")
    value, info = client.get_with_info("c")
    assert value == "v1" and info.version > 0 and info.integer is False
    assert client.cas("c", "v2", info.version) is True
    _, info2 = client.get_with_info("c")
    assert info2.version != info.version
    assert client.cas("c", "v3", info.version) is False  # an old version
    assert client.cas("c", "v3", 0) is False  # 0 never stores
    assert client.cas("missing", "v3", info2.version) is False
    assert client.get("c") == "v2"
    # compare_and_delete: only over the version read.
    assert client.compare_and_delete("c", info.version) is False
    assert client.get("c") == "v2"
    assert client.compare_and_delete("c", info2.version) is True
    assert client.get("c") is None
    with pytest.raises(InvalidArgumentError):
        client.compare_and_delete("c", -1)
    # cas with ttl=0 stores a value that never expires, as set does.
    client.set("c", "v1")
    _, info = client.get_with_info("c")
    assert client.cas("c", "v4", info.version, ttl=0) is True
    assert client.get("c") == "v4" and client.ttl("c") == math.inf
    with pytest.raises(InvalidArgumentError):
        client.cas("c", "x", -1)
    with pytest.raises(InvalidArgumentError):
        client.cas("c", "x", "7")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="negative TTL"):
        client.add("c", "x", ttl=-1)


def test_incr_creates_adds_and_decr_subtracts(client):
    assert client.incr("n") == 1  # initial 0 by default, like Redis INCR
    assert client.incr("n", 5) == 6
    assert client.decr("n", 10) == -4
    assert client.get("n") == -4
    assert client.incr("fresh", 1, initial=None) is None
    assert client.get("fresh") is None
    assert client.incr("from10", 5, initial=10) == 15
    assert client.decr("down", 3, initial=10) == 7
    # A counter created with a ttl keeps its expiry through incrs.
    assert client.incr("t", ttl=60) == 1
    before = client.ttl("t")
    assert client.incr("t") == 2
    assert 50 < client.ttl("t") <= before
    # Bad arguments.
    with pytest.raises(TypeError):
        client.incr("n", 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.incr("n", True)
    with pytest.raises(InvalidArgumentError):
        client.incr("n", 1 << 63)
    with pytest.raises(InvalidArgumentError):
        client.decr("n", -(1 << 63))
    assert client.get("n") == -4


def test_incr_of_a_non_integer_is_an_error_and_leaves_the_value(client):
    client.set("text", "hello")
    with pytest.raises(InvalidArgumentError, match="not an integer"):
        client.incr("text")
    assert client.get("text") == "hello"
    client.set("n", (1 << 63) - 1)
    with pytest.raises(InvalidArgumentError):
        client.incr("n")
    assert client.get("n") == (1 << 63) - 1


@pytest.mark.parametrize("serializer", ["pickle", "json", "msgpack"])
def test_set_of_an_int_stores_a_counter(cachekitd_socket, namespace, serializer):
    with Client(socket=cachekitd_socket, namespace=namespace, serializer=serializer) as c:
        c.set("n", 5)
        assert c.get_raw("n") == b"5"
        value, info = c.get_with_info("n")
        assert value == 5 and type(value) is int and info.integer
        assert c.incr("n") == 6
        assert c.get("n") == 6
        # add / replace / cas of an int store the counter format too.
        assert c.add("a", 0) is True
        assert c.incr("a", 2) == 2
        assert c.replace("a", -9) is True
        assert c.get_raw("a") == b"-9"
        _, info = c.get_with_info("a")
        assert c.cas("a", 100, info.version) is True
        assert c.decr("a") == 99
        # set_many too; bools, floats and ints beyond int64 use the serializer.
        c.set_many({"m1": 1, "m2": "x"})
        assert c.incr("m1") == 2 and c.get("m2") == "x"
        for other in (True, 2.5):
            c.set("o", other)
            assert c.get("o") == other and type(c.get("o")) is type(other)
        if serializer != "msgpack":  # msgpack has no integers beyond 64 bits
            c.set("big", 1 << 70)
            assert c.get("big") == 1 << 70
        # get_many and get_local read counters as ints.
        assert c.get_many(["n", "m1", "m2"]) == {"n": 6, "m1": 2, "m2": "x"}
        assert c.get_local("n") == 6
        assert c.get_and_delete("n") == 6
        assert c.get("n") is None


def test_a_counter_reads_as_an_int_even_without_a_serializer(cachekitd_socket, namespace):
    with Client(socket=cachekitd_socket, namespace=namespace, serializer=None) as raw:
        assert raw.incr("n", 41) == 41
        assert raw.get("n") == 41
        assert raw.get_raw("n") == b"41"
        with pytest.raises(Exception):
            raw.set("x", 5)  # serializer=None stores bytes only


def test_get_and_delete_takes_the_value_once(client):
    client.set("k", {"v": 1})
    assert client.get_and_delete("k") == {"v": 1}
    assert client.get_and_delete("k") is None
    assert client.get_and_delete("k", "dflt") == "dflt"
    assert client.get("k") is None
    # A value larger than the first buffer (4 KiB) comes whole.
    big = b"x" * 50_000
    client.set_raw("big", big)
    with Client(socket=client._opts.socket, namespace=client.namespace, serializer=None) as raw:
        assert raw.get_and_delete("big") == big
    assert client.get("big") is None


def test_touch_expire_persist_and_ttl(client):
    assert client.ttl("k") is None
    assert client.touch("k", 10) is False
    assert client.persist("k") is False
    client.set("k", "v")
    assert client.ttl("k") == math.inf
    assert client.expire("k", 50) is True
    assert 40 < client.ttl("k") <= 50
    assert client.touch("k", timedelta(seconds=100)) is True
    assert 90 < client.ttl("k") <= 100
    assert client.persist("k") is True
    assert client.ttl("k") == math.inf
    assert client.touch("k", 20) is True
    assert client.touch("k", None) is True  # None: persist
    assert client.ttl("k") == math.inf
    assert client.get("k") == "v"
    assert client.expire("k", 20) is True
    assert client.expire("k", 0) is True  # 0: never expires, as touch(0) and set(ttl=0)
    assert client.ttl("k") == math.inf and client.get("k") == "v"
    with pytest.raises(InvalidArgumentError):
        client.expire("k", None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="negative TTL"):
        client.touch("k", -1)
    assert client.delete("k") is True  # how a key is dropped
    assert client.get("k") is None and client.ttl("k") is None
    with pytest.raises(TypeError):
        client.touch("k", "10")  # type: ignore[arg-type]


def test_scan_iter_returns_each_match_once(client):
    for i in range(120):
        client.set(f"user:{i:03d}", i, ttl=600 if i < 10 else None, tags=["even"] if i % 2 == 0 else ())
    client.set("other", 1)
    items = list(client.scan_iter("user:*", page_size=7))
    keys = [it.key for it in items]
    assert sorted(keys) == [f"user:{i:03d}".encode() for i in range(120)]
    now = time.time()
    for it in items:
        assert isinstance(it, ScanItem)
        assert it.version > 0 and it.stored_len > 0 and abs(it.created - now) < 60
        n = int(it.key[5:])
        assert (it.expires is not None) == (n < 10)
    assert len(list(client.scan_iter())) == 121
    assert len(list(client.scan_iter(b"user:0[0-1]?"))) == 20
    assert len(list(client.scan_iter(tag="even"))) == 60
    assert len(list(client.scan_iter("user:00*", tag="even", exact=True))) == 5
    assert list(client.scan_iter("nothing*")) == []


def test_scan_iter_refuses_bad_input_at_once(client):
    with pytest.raises(InvalidArgumentError):
        client.scan_iter(exact=True)
    with pytest.raises(InvalidArgumentError):
        client.scan_iter(page_size=1001)
    with pytest.raises(InvalidArgumentError):
        client.scan_iter(page_size=0)
    with pytest.raises(InvalidArgumentError):
        client.scan_iter(tag="a//b")
    with pytest.raises(TypeError):
        client.scan_iter(5)  # type: ignore[arg-type]
    client.set("k", 1)
    with pytest.raises(InvalidArgumentError, match="pattern is empty"):
        client.scan_iter("")  # None selects every key; "" is a mistake
    with pytest.raises(InvalidArgumentError, match="pattern is empty"):
        client.delete_pattern(b"")
    assert client.get("k") == 1


def test_delete_pattern_frees_what_a_scan_selects(client):
    for i in range(30):
        client.set(f"drop:{i}", i, tags=["t/x"] if i >= 25 else ())
        client.set(f"keep:{i}", i, tags=["t/y"] if i >= 25 else ())
    assert client.delete_pattern("drop:*") == 30
    assert client.get("drop:1") is None and client.get("keep:1") == 1
    assert client.delete_pattern(tag="t/y") == 5
    assert client.get("keep:26") is None and client.get("keep:1") == 1
    assert client.delete_pattern("nothing*") == 0
    with pytest.raises(InvalidArgumentError):
        client.delete_pattern(exact=True)
    assert client.delete_pattern() == 25  # everything of the namespace
    assert list(client.scan_iter()) == []


def test_namespaces_lists_entries_and_bytes(client):
    client.set("a", "x" * 100)
    client.set("b", "y")
    found = [ns for ns in client.namespaces() if ns.name == client.namespace]
    assert len(found) == 1
    ns = found[0]
    assert isinstance(ns, NamespaceInfo) and ns.entries == 2 and ns.bytes > 100


def test_info_carries_version_and_integer(client):
    client.set("k", "v")
    _, info = client.get_with_info("k")
    assert info.version > 0 and info.integer is False
    client.incr("n")
    _, info = client.get_with_info("n")
    assert info.integer is True


def test_a_zero_ttl_never_expires_and_a_negative_one_is_refused(client):
    """The one TTL rule of every binding and the CLI: None or 0 = never expires, in set,
    set_many, add, cas, incr, touch and expire; a negative TTL raises and says so."""
    client.set("set", "v", ttl=0)
    client.set_raw("raw", b"v", ttl=timedelta(0))
    client.set("int", 7, ttl=0)  # a counter: cachekit_set_i64
    client.set_many({"m1": "v", "m2": "v"}, ttl=0.0)
    assert client.add("add", "v", ttl=0) is True
    assert client.incr("incr", ttl=0) == 1
    client.set("touch", "v", ttl=60)
    assert client.touch("touch", 0) is True
    client.set("expire", "v", ttl=60)
    assert client.expire("expire", 0) is True
    for key in ("set", "raw", "int", "m1", "m2", "add", "incr", "touch", "expire"):
        assert client.ttl(key) == math.inf, key
    calls = {
        "set": lambda: client.set("n", "v", ttl=-1),
        "set_raw": lambda: client.set_raw("n", b"v", ttl=timedelta(seconds=-1)),
        "set_many": lambda: client.set_many({"n": "v"}, ttl=-0.5),
        "add": lambda: client.add("n", "v", ttl=-1),
        "incr": lambda: client.incr("n", ttl=-1),
        "touch": lambda: client.touch("touch", -1),
        "expire": lambda: client.expire("touch", -1),
    }
    for name, call in calls.items():
        with pytest.raises(InvalidArgumentError, match="negative TTL"):
            call()
    assert client.get("n") is None
    assert client.ttl("touch") == math.inf

"""Serializers: pickle (default), json, msgpack, None (bytes), a custom one; and the errors
that name what could not be serialized."""

from __future__ import annotations

import datetime
import pickle
import threading
from decimal import Decimal

import pytest

from cachekit_shm import CachekitError, Client, SerializationError


@pytest.fixture
def make(cachekitd_socket, namespace):
    made = []

    def make(serializer):
        c = Client(socket=cachekitd_socket, namespace=namespace, serializer=serializer)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def test_pickle_round_trips_python_objects(make):
    c = make("pickle")
    value = {"p": Point(1, 2), "when": datetime.date(2026, 1, 2), "d": Decimal("1.5"), "t": (1, {2}), "b": b"x"}
    c.set("k", value)
    assert c.get("k") == value


def test_json(make):
    c = make("json")
    c.set("k", {"a": [1, 2.5, "é", None, True]})
    assert c.get("k") == {"a": [1, 2.5, "é", None, True]}
    assert c.get_raw("k") == '{"a":[1,2.5,"é",null,true]}'.encode()
    with pytest.raises(SerializationError, match="type set with json"):
        c.set("k", {1, 2})


def test_msgpack(make):
    pytest.importorskip("msgpack")
    c = make("msgpack")
    c.set("k", {"a": [1, b"\x00", "é"], 1: 2})
    assert c.get("k") == {"a": [1, b"\x00", "é"], 1: 2}
    with pytest.raises(SerializationError, match="Point with msgpack"):
        c.set("k", Point(1, 2))


def test_none_is_bytes_in_bytes_out(make):
    c = make(None)
    c.set("k", b"raw")
    assert c.get("k") == b"raw"
    c.set("k", bytearray(b"ba"))
    assert c.get("k") == b"ba"
    with pytest.raises(SerializationError, match="type str with serializer=None"):
        c.set("k", "text")
    with pytest.raises(SerializationError, match="type int"):
        c.set_many({"k": 1})


@pytest.mark.parametrize(
    "value, type_name",
    [(lambda: 1, "function"), (threading.Lock(), "_thread.lock"), ((x for x in ()), "generator")],
)
def test_unpicklable_values_name_their_type(make, value, type_name):
    with pytest.raises(SerializationError) as e:
        make("pickle").set("k", value)
    assert f"type {type_name} with pickle" in str(e.value)
    assert isinstance(e.value, CachekitError)


def test_bytes_that_do_not_load_are_a_serialization_error(make):
    raw, pickled, as_json = make(None), make("pickle"), make("json")
    raw.set("k", b"\x00 not a pickle")
    with pytest.raises(SerializationError, match="does not load with pickle"):
        pickled.get("k")
    with pytest.raises(SerializationError, match="does not load with json"):
        as_json.get("k")
    with pytest.raises(SerializationError):
        pickled.get_many(["k"])
    with pytest.raises(SerializationError):
        pickled.get_with_info("k")
    assert pickled.get_raw("k") == b"\x00 not a pickle"  # bytes are always readable


SIMPLE = [b"", b"a", b"x" * 100, bytes(range(256)) * 63, b"y" * 255, b"z" * 256, "", "clé",
          "x" * 255, "\U0001f600" * 64, "lone \ud800 surrogate", "w" * 300]
OTHER = [None, True, 1.5, 10**30, (b"t",), [b"l"], {"d": b"v"}, bytearray(b"ba"), frozenset({1})]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_get_reads_every_pickle_as_pickle_loads_does(make, protocol):
    # get unpickles one bytes or str in C (cachekit_shm._hit); every other stored pickle is
    # pickle.loads's: the values and their types must be the same either way.
    raw, pickled = make(None), make("pickle")
    for i, value in enumerate(SIMPLE + OTHER):
        stored = pickle.dumps(value, protocol=protocol)
        raw.set(f"p{i}", stored)
        for got in (pickled.get(f"p{i}"), pickled.get_local(f"p{i}")):
            assert type(got) is type(value) and got == value, (protocol, value)


def test_pickles_that_look_simple_but_are_not_go_to_pickle(make):
    raw, pickled = make(None), make("pickle")
    good = pickle.dumps(b"abc", protocol=5)  # PROTO 5, FRAME 15, SHORT_BINBYTES 3, MEMOIZE, STOP
    cases = {
        "trailing": good + b"junk",  # pickle.loads ignores what follows STOP
        "no frame": good[:2] + good[11:],
        "short frame": good[:3] + (14).to_bytes(8, "little") + good[11:],
        "no memoize": good[:-2] + b".",
        "bad utf8": pickle.dumps("é", protocol=5).replace(b"\xc3\xa9", b"\xc3\x28"),
        "long len": good[:12] + b"\x09" + good[13:],
    }
    for name, stored in cases.items():
        raw.set(name, stored)
        try:
            want = pickle.loads(stored)
        except Exception:
            with pytest.raises(SerializationError, match="does not load with pickle"):
                pickled.get(name)
        else:
            assert pickled.get(name) == want, name


def test_a_load_error_keeps_its_cause(make):
    # get calls pickle.loads itself on a hit (not PickleSerializer.loads): the error is the
    # same SerializationError, caused by pickle's; another serializer's error is its own.
    raw, pickled, as_json = make(None), make("pickle"), make("json")
    raw.set("k", b"\x80\x05 truncated")
    with pytest.raises(SerializationError, match="does not load with pickle") as e:
        pickled.get("k")
    assert e.value.__cause__ is not None and not isinstance(e.value.__cause__, SerializationError)
    with pytest.raises(SerializationError, match="does not load with pickle"):
        pickled.get_local("k")
    raw.set("j", b"{not json")
    with pytest.raises(SerializationError, match="does not load with json") as e:
        as_json.get("j")
    assert isinstance(e.value.__cause__, ValueError) and e.value.__cause__ is not e.value


def test_custom_serializer(make):
    class Upper:
        name = "upper"

        def dumps(self, value):
            return value.upper().encode()

        def loads(self, data):
            return data.decode()

    c = make(Upper())
    c.set("k", "shout")
    assert c.get("k") == "SHOUT"
    with pytest.raises(TypeError):
        make(object())


def test_missing_msgpack_is_explained(monkeypatch, cachekitd_socket):
    import builtins

    real = builtins.__import__

    def no_msgpack(name, *args, **kwargs):
        if name == "msgpack":
            raise ImportError("no msgpack here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_msgpack)
    with pytest.raises(ImportError, match="pip install msgpack"):
        Client(socket=cachekitd_socket, serializer="msgpack")

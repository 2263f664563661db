"""Serializers: how `Client.get` / `Client.set` turn Python values into the stored bytes.

Stored bytes carry no marker of the serializer that wrote them: every client of a namespace
must use the same one (a value that does not load raises `SerializationError`). Use
``serializer=None`` (bytes in, bytes out) to share values with programs in other languages.
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Optional, Union

try:  # Python 3.8+: typing.Protocol
    from typing import Literal, Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Literal, Protocol  # type: ignore

from .errors import SerializationError

__all__ = ["Serializer", "SerializerName", "PickleSerializer", "JsonSerializer", "MsgpackSerializer",
           "BytesSerializer", "resolve"]


class Serializer(Protocol):
    """What a serializer object provides (pass one as ``serializer=`` for a custom format)."""

    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


SerializerName = Literal["pickle", "json", "msgpack"]


def _type_name(value: Any) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _dump_error(serializer: str, value: Any, exc: BaseException) -> SerializationError:
    return SerializationError(
        f"cannot serialize a value of type {_type_name(value)} with {serializer}: {exc}"
    )


def load_error(serializer: str, data: bytes, exc: BaseException) -> SerializationError:
    return SerializationError(
        f"the stored value ({len(data)} bytes) does not load with {serializer}: {exc}; "
        "was it written by a client with another serializer?"
    )


class PickleSerializer:
    """pickle, protocol 5 (Python 3.8+). Any picklable object. Load only what your own
    processes wrote: unpickling runs code chosen by whoever wrote the bytes."""

    name = "pickle"
    protocol = 5

    def dumps(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=self.protocol)
        except Exception as e:  # PicklingError, TypeError, AttributeError, RecursionError...
            raise _dump_error("pickle", value, e) from e

    def loads(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except Exception as e:
            raise load_error("pickle", data, e) from e


class JsonSerializer:
    """JSON (UTF-8, compact). dict/list/str/int/float/bool/None; tuples come back as lists."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode()
        except (TypeError, ValueError, RecursionError) as e:
            raise _dump_error("json", value, e) from e

    def loads(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise load_error("json", data, e) from e


class MsgpackSerializer:
    """MessagePack (``pip install msgpack``): compact, readable from other languages."""

    name = "msgpack"

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError as e:
            raise ImportError(
                "serializer='msgpack' needs the msgpack package: pip install msgpack "
                "(or cachekit-shm[msgpack])"
            ) from e
        self._packb = msgpack.packb
        self._unpackb = msgpack.unpackb

    def dumps(self, value: Any) -> bytes:
        try:
            return self._packb(value, use_bin_type=True)
        except Exception as e:  # TypeError, OverflowError, ValueError
            raise _dump_error("msgpack", value, e) from e

    def loads(self, data: bytes) -> Any:
        try:
            return self._unpackb(data, raw=False, strict_map_key=False)
        except Exception as e:
            raise load_error("msgpack", data, e) from e


class BytesSerializer:
    """``serializer=None``: values are bytes in, bytes out (bytearray and memoryview are taken
    too). Anything else raises SerializationError."""

    name = "none"

    def dumps(self, value: Any) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        raise SerializationError(
            f"cannot store a value of type {_type_name(value)} with serializer=None: "
            "it stores bytes only; encode it, or choose serializer='pickle', 'json' or 'msgpack'"
        )

    def loads(self, data: bytes) -> Any:
        return data


_PICKLE = PickleSerializer()
_JSON = JsonSerializer()
_BYTES = BytesSerializer()


def resolve(serializer: Union[SerializerName, Serializer, None]) -> Serializer:
    """The serializer object for a ``serializer=`` argument."""
    if serializer is None:
        return _BYTES
    if serializer == "pickle":
        return _PICKLE
    if serializer == "json":
        return _JSON
    if serializer == "msgpack":
        return MsgpackSerializer()
    if isinstance(serializer, str):
        raise ValueError(
            f"unknown serializer {serializer!r}: choose 'pickle', 'json', 'msgpack', None, "
            "or an object with dumps() and loads()"
        )
    if not (callable(getattr(serializer, "dumps", None)) and callable(getattr(serializer, "loads", None))):
        raise TypeError(f"serializer {serializer!r} has no dumps() and loads()")
    return serializer


def optional_name(serializer: Optional[Serializer]) -> str:
    return getattr(serializer, "name", type(serializer).__name__)

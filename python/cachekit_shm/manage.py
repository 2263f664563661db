"""The atomic and management operations of `Client` (a mixin, kept out of client.py for size):
add, replace, cas, incr/decr, get_and_delete, touch/expire/persist, ttl, scan_iter,
delete_pattern, namespaces. Each write is one request that cachekitd applies atomically.

Integers. A counter is stored as the ASCII decimal of an int64, flagged integer in its
envelope (what `incr` writes). `set`, `add`, `replace` and `cas` of an exact ``int`` (not a
bool) with the pickle, json or msgpack serializer store that format, so ``set(k, 5)`` then
``incr(k)`` works; `get` of a flagged value returns an ``int`` whatever the serializer.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, List, NamedTuple, Optional, Tuple, Union

from ._native import BUFFER_TOO_SMALL, MISS, OK, Native, ffi, lib, raise_for
from .errors import InvalidArgumentError

__all__ = ["ScanItem", "NamespaceInfo"]

_NULL = ffi.NULL
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
# The serializers whose clients store an exact int as a counter (their own encoding of an int
# would be readable by them alone).
_COUNTER_SERIALIZERS = frozenset({"pickle", "json", "msgpack"})


class ScanItem(NamedTuple):
    """One entry found by `Client.scan_iter` (this host's table)."""

    key: bytes
    """The key (bytes, as stored: a str key is its UTF-8)."""
    stored_len: int
    """Bytes the entry takes in the table (its envelope, not the decoded value)."""
    created: float
    """When it was written, Unix seconds."""
    expires: Optional[float]
    """When it stops being fresh, Unix seconds; None = never."""
    version: int
    """Its version on this host (as `Info.version`)."""


class NamespaceInfo(NamedTuple):
    """One namespace of `Client.namespaces` (this host's table)."""

    name: str
    entries: int
    bytes: int
    """Bytes its entries take in the table."""


def _i64(value: Any, what: str) -> int:
    if type(value) is not int:
        raise TypeError(f"{what} is an int, not {type(value).__name__}")
    if not _I64_MIN <= value <= _I64_MAX:
        raise InvalidArgumentError(f"{what} {value} is outside the int64 range counters have")
    return value


def counter_bytes(value: Any, serializer_name: str, encrypted: bool = False) -> Optional[bytes]:
    """The counter encoding of `value` when it is stored as one (an exact int in the int64
    range, with a serializer of `_COUNTER_SERIALIZERS`, by a client that does not encrypt:
    counters are plaintext, so an encrypting client stores ints sealed like any value and
    makes counters only through incr), else None."""
    if encrypted:
        return None
    if type(value) is int and serializer_name in _COUNTER_SERIALIZERS and _I64_MIN <= value <= _I64_MAX:
        return str(value).encode()
    return None


def _pattern(pattern: Any) -> Any:
    """The C pattern argument: NULL for None (every key); an empty one is refused by the
    library (a pattern built from an empty variable must not select everything)."""
    if pattern is None:
        return _NULL
    if isinstance(pattern, str):
        return pattern.encode()
    if isinstance(pattern, (bytes, bytearray, memoryview)):
        return bytes(pattern)
    raise TypeError(f"a pattern is a str or bytes glob like 'user:*', not {type(pattern).__name__}")


def _tag(tag: Any, exact: bool, keep: List[Any]) -> Any:
    from .client import tag_path  # client.py imports this module

    if tag is None:
        if exact:
            raise InvalidArgumentError("exact=True needs a tag; give the tag to match exactly")
        return _NULL
    c = ffi.new("char[]", tag_path(tag).encode())
    keep.append(c)
    return c


def _seconds_ms(ms: int) -> Optional[float]:
    return None if ms == 0 else ms / 1000.0


class _Scan(Native):
    """A `cachekit_scan`, read a chunk at a time (`take`)."""

    __slots__ = ("_buf", "_cap", "_len", "_item")
    _free = lib.cachekit_scan_free
    _kind = "scan"

    def __init__(self, raw: Any) -> None:
        Native.__init__(self, raw)
        self._cap = 256
        self._buf = ffi.new("uint8_t[]", self._cap)
        self._len = ffi.new("size_t *")
        self._item = ffi.new("cachekit_scan_item *")

    def take(self, n: int) -> List[ScanItem]:
        """Up to `n` more items; an empty list at the end (then the scan is freed)."""
        out: List[ScanItem] = []
        if self._ptr is None:  # finished (or closed): nothing more
            return out
        s = self._ptr
        while len(out) < n:
            rc = lib.cachekit_scan_next(s, self._buf, self._cap, self._len, self._item)
            if rc == BUFFER_TOO_SMALL:
                self._cap = self._len[0]
                self._buf = ffi.new("uint8_t[]", self._cap)
                continue
            if rc == MISS:
                self.close()
                break
            if rc != OK:
                raise_for(rc)
            it = self._item
            out.append(ScanItem(ffi.buffer(self._buf, self._len[0])[:], int(it.stored_len),
                                it.created_ms / 1000.0, _seconds_ms(it.expires_ms), int(it.version)))
        return out


class _Namespaces(Native):
    __slots__ = ()
    _free = lib.cachekit_namespaces_free
    _kind = "namespace list"


def _iterate(scan: _Scan) -> Iterator[ScanItem]:
    with scan:
        while True:
            items = scan.take(256)
            if not items:
                return
            yield from items


class ManageMixin:
    """The methods; `Client` supplies `_handle`, `_serializer`, `_loads` and `_set_options`."""

    _handle: Any
    _serializer: Any
    _loads: Any

    # ---- conditional writes --------------------------------------------------------------------

    def _set_if(self, key: Any, value: Any, ttl: Any, grace: Any, tags: Any, version: Optional[int],
                condition: str, expire_now: bool = False) -> bool:
        from .client import _key, _ms, _tag_list, _ttl_ms

        k = _key(key)
        data = counter_bytes(value, self._serializer.name, self._encrypted)
        flags = 0
        if data is not None:
            flags |= lib.CACHEKIT_SET_INTEGER
        else:
            data = self._serializer.dumps(value)
        o = ffi.new("cachekit_set_options *")
        o.struct_size = ffi.sizeof("cachekit_set_options")
        if expire_now:
            flags |= lib.CACHEKIT_SET_EXPIRE_NOW  # a compare-and-delete
        else:
            o.ttl_ms = _ttl_ms(ttl)
        o.grace_ms = _ms(grace, "grace", zero=True)
        ctags, o.tag_count, _keep = _tag_list(tags)
        o.tags = ctags  # the array is owned by `ctags`: held until the call returns
        o.flags = flags
        stored = ffi.new("bool *")
        ptr = self._handle()
        if condition == "add":
            rc = lib.cachekit_add(ptr, k, len(k), data, len(data), o, stored)
        elif condition == "replace":
            rc = lib.cachekit_replace(ptr, k, len(k), data, len(data), o, stored)
        else:
            rc = lib.cachekit_cas(ptr, k, len(k), data, len(data), version, o, stored)
        if rc != OK:
            raise_for(rc)
        return bool(stored[0])

    def add(self, key: Any, value: Any, ttl: Any = None, grace: Any = 0, tags: Any = ()) -> bool:
        """Stores `value` only if `key` has no fresh entry (an expired or invalidated one counts
        as none); True if it stored. Atomic: of any number of processes adding one key at
        once, exactly one gets True. Arguments as `set`."""
        return self._set_if(key, value, ttl, grace, tags, None, "add")

    def replace(self, key: Any, value: Any, ttl: Any = None, grace: Any = 0, tags: Any = ()) -> bool:
        """Stores `value` only if `key` has a fresh entry; True if it stored."""
        return self._set_if(key, value, ttl, grace, tags, None, "replace")

    def cas(self, key: Any, value: Any, version: int, ttl: Any = None, grace: Any = 0,
            tags: Any = ()) -> bool:
        """Compare and set: stores `value` only if `key`'s fresh entry still has `version`
        (`Info.version` of a read, e.g. ``get_with_info``); True if it stored, else read again
        and retry. ``ttl`` as in `set` (None or 0: never expires); to delete only over a
        version, use `compare_and_delete`. Version 0 never stores."""
        if type(version) is not int or not 0 <= version < 1 << 64:
            raise InvalidArgumentError(f"version is the int of Info.version, not {version!r}")
        return self._set_if(key, value, ttl, grace, tags, version, "cas")

    def compare_and_delete(self, key: Any, version: int) -> bool:
        """Deletes `key` only if its fresh entry still has `version` (`Info.version` of a
        read): how a lock taken with `add` is released without releasing another holder's.
        True if it deleted."""
        if type(version) is not int or not 0 <= version < 1 << 64:
            raise InvalidArgumentError(f"version is the int of Info.version, not {version!r}")
        return self._set_if(key, b"", None, 0, (), version, "cas", expire_now=True)

    # ---- counters ----------------------------------------------------------------------------

    def _counter(self, fn: Any, key: Any, delta: Any, initial: Any, ttl: Any) -> Optional[int]:
        from .client import _key, _ttl_ms

        k = _key(key)
        d = _i64(delta, "delta")
        init = _NULL if initial is None else ffi.new("int64_t *", _i64(initial, "initial"))
        out = ffi.new("int64_t *")
        rc = fn(self._handle(), k, len(k), d, init, _ttl_ms(ttl), out)
        if rc == OK:
            return int(out[0])
        if rc == MISS:
            return None
        raise_for(rc)
        return None  # unreachable

    def incr(self, key: Any, delta: int = 1, *, initial: Optional[int] = 0, ttl: Any = None) -> Optional[int]:
        """Adds `delta` to the counter at `key`, atomically across processes, and returns the
        new value. A missing key is created as ``initial + delta`` with `ttl` (None: never
        expires); with ``initial=None`` a missing key returns None and stores nothing. An
        existing counter keeps its expiry. Raises `InvalidArgumentError` when the value is not
        an integer or the result would overflow an int64 (the value is left unchanged)."""
        return self._counter(lib.cachekit_incr, key, delta, initial, ttl)

    def decr(self, key: Any, delta: int = 1, *, initial: Optional[int] = 0, ttl: Any = None) -> Optional[int]:
        """Subtracts `delta`: `incr` of ``-delta`` (a missing key becomes ``initial - delta``)."""
        return self._counter(lib.cachekit_decr, key, delta, initial, ttl)

    # ---- take, touch, ttl --------------------------------------------------------------------

    def _take_raw(self, key: Any) -> Optional[Tuple[bytes, bool]]:
        """``(stored bytes, integer)`` of the value `get_and_delete` removed, or None."""
        from .client import _key

        k = _key(key)
        ptr = self._handle()
        cap = 4096
        lenp = ffi.new("size_t *")
        info = ffi.new("cachekit_value_info *")
        while True:
            buf = ffi.new("uint8_t[]", cap)
            rc = lib.cachekit_get_and_delete(ptr, k, len(k), buf, cap, lenp, info)
            if rc == OK:
                return ffi.buffer(buf, lenp[0])[:], bool(info.integer)
            if rc == MISS:
                return None
            if rc != BUFFER_TOO_SMALL:
                raise_for(rc)
            cap = lenp[0]  # the value is kept for this thread's next call: ask again

    def get_and_delete(self, key: Any, default: Any = None) -> Any:
        """Removes `key` and returns the value it had (`default` when it had no fresh entry).
        Atomic: of processes taking one key at once, one gets the value."""
        hit = self._take_raw(key)
        if hit is None:
            return default
        raw, integer = hit
        return int(raw) if integer else self._loads(raw)

    def touch(self, key: Any, ttl: Any) -> bool:
        """Gives `key`'s fresh entry a new time to live from now (None or 0: never expires, as
        in `set`; negative is an error; to drop a key, delete it); its value and tags stay.
        True if the key had a fresh entry."""
        from .client import _key, _ttl_ms

        k = _key(key)
        ms = _ttl_ms(ttl)
        found = ffi.new("bool *")
        rc = lib.cachekit_touch(self._handle(), k, len(k), min(ms, _I64_MAX), found)
        if rc != OK:
            raise_for(rc)
        return bool(found[0])

    def expire(self, key: Any, ttl: Any) -> bool:
        """`touch` with a time to live (seconds or timedelta; 0 = never expires, as in `touch`)."""
        if ttl is None:
            raise InvalidArgumentError("expire needs a ttl; to make a key never expire, use persist()")
        return self.touch(key, ttl)

    def persist(self, key: Any) -> bool:
        """Makes `key`'s fresh entry never expire. True if the key had one."""
        return self.touch(key, None)

    def ttl(self, key: Any) -> Optional[float]:
        """Seconds until `key` expires (0 for a stale entry served within its grace period);
        ``math.inf`` when it never expires; None when it is missing."""
        from .client import _key

        k = _key(key)
        out = ffi.new("int64_t *")
        rc = lib.cachekit_ttl(self._handle(), k, len(k), out)
        if rc == MISS:
            return None
        if rc != OK:
            raise_for(rc)
        ms = int(out[0])
        return math.inf if ms < 0 else ms / 1000.0

    # ---- enumeration ---------------------------------------------------------------------------

    def _scan_open(self, pattern: Any, tag: Any, exact: bool, page_size: Optional[int]) -> _Scan:
        p = _pattern(pattern)
        keep: List[Any] = []
        t = _tag(tag, exact, keep)
        if page_size is None:
            size = 0
        elif type(page_size) is not int or not 1 <= page_size <= 1000:
            raise InvalidArgumentError(f"page_size is 1 to 1000 items, not {page_size!r}")
        else:
            size = page_size
        out = ffi.new("cachekit_scan **")
        rc = lib.cachekit_scan_open(self._handle(), p, 0 if p is _NULL else len(p), t, bool(exact), size, out)
        if rc != OK:
            raise_for(rc)
        return _Scan(out[0])

    def scan_iter(self, pattern: Union[str, bytes, None] = None, *, tag: Any = None, exact: bool = False,
                  page_size: Optional[int] = None) -> Iterator[ScanItem]:
        """The entries of this namespace on this host whose key matches the glob `pattern`
        (Redis ``SCAN MATCH`` syntax: ``*``, ``?``, ``[a-z]``, ``[^a]``, ``\\`` escapes; None:
        every key) and, with `tag`, that carry the tag or (unless `exact`) a tag below it. The
        daemon answers a page (`page_size` items, 1 to 1000; None: 100) per request and never
        holds its writers up for long; an entry present for the whole scan comes exactly
        once. Bad arguments raise here, before the iterator is returned."""
        return _iterate(self._scan_open(pattern, tag, exact, page_size))

    def delete_pattern(self, pattern: Union[str, bytes, None] = None, *, tag: Any = None,
                       exact: bool = False) -> int:
        """Deletes the entries `scan_iter` would select (this host, and Redis when the daemon
        has one), freeing their memory; returns how many. With neither a pattern nor a tag it
        deletes the whole namespace."""
        p = _pattern(pattern)
        keep: List[Any] = []
        t = _tag(tag, exact, keep)
        out = ffi.new("uint64_t *")
        rc = lib.cachekit_delete_matching(self._handle(), p, 0 if p is _NULL else len(p), t, bool(exact), out)
        if rc != OK:
            raise_for(rc)
        return int(out[0])

    def namespaces(self) -> List[NamespaceInfo]:
        """The namespaces this host's table holds entries of, largest first."""
        out = ffi.new("cachekit_namespaces **")
        rc = lib.cachekit_namespaces_open(self._handle(), out)
        if rc != OK:
            raise_for(rc)
        result: List[NamespaceInfo] = []
        with _Namespaces(out[0]) as ns:
            n = ns._live()
            cap = 128
            buf = ffi.new("char[]", cap)
            size = ffi.new("size_t *")
            entries = ffi.new("uint64_t *")
            nbytes = ffi.new("uint64_t *")
            while True:
                rc = lib.cachekit_namespaces_next(n, buf, cap, size, entries, nbytes)
                if rc == BUFFER_TOO_SMALL:
                    cap = size[0]
                    buf = ffi.new("char[]", cap)
                    continue
                if rc == MISS:
                    break
                if rc != OK:
                    raise_for(rc)
                result.append(NamespaceInfo(ffi.string(buf).decode(), int(entries[0]), int(nbytes[0])))
        return result

"""`Client`: the synchronous client, one native `cachekit_client` handle per object.

Hits are read from the daemon's shared-memory segment inside `cachekit_get` (no syscall, no
lock), for `get`, `get_raw` and `get_local` in one call of the C extension `_hit` (see its
source, _hit.c); misses and writes are requests to cachekitd over its Unix socket. `get_local` reads the
segment only (`cachekit_get_local`): it never waits for the daemon. One client serves any
number of threads (the native handle is thread-safe; cffi releases the GIL during calls).

Fork safety: a native handle does not survive ``fork()``. Every live client is registered
with ``os.register_at_fork``: in the child, the inherited handle is closed (the child's copies
of its sockets and mapping only; the parent's connection is untouched) and the client opens
a new one, lazily, on its next use. Methods that talk to the daemon also compare
``os.getpid()`` with the pid that opened the handle, for forks that bypass the hook.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import pickle
import sys
import threading
import weakref
from datetime import timedelta
from typing import (
    Any,
    Dict,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Tuple,
    TypeVar,
    Union,
)

from ._hit import HIT_INT as _HIT_INT, HIT_LOCAL as _HIT_LOCAL, HIT_PICKLE as _HIT_PICKLE, hit as _hit
from ._native import BUFFER_TOO_SMALL, MISS, OK, Batch, Native, StatsSnapshot, ffi, lib, raise_for
from .errors import CachekitError, ClosedError, InvalidArgumentError, SerializationError
from .lease import QueryMixin
from .manage import ManageMixin, NamespaceInfo, ScanItem, counter_bytes
from .serializers import _PICKLE, Serializer, SerializerName, load_error, resolve

__all__ = ["Client", "Info", "Pong", "Key", "Tag", "Tags", "Seconds", "MasterKey", "ScanItem", "NamespaceInfo"]

Key = Union[str, bytes]
"""A key: ``str`` (stored as its UTF-8 bytes) or ``bytes``."""
Tag = Union[str, Tuple[Any, ...]]
"""A tag path: ``"posts/123"``, or a tuple of parts joined with "/": ``("posts", 123)``."""
Tags = Union[Tag, Iterable[Tag]]
Seconds = Union[float, int, timedelta]
T = TypeVar("T")


class Info(NamedTuple):
    """Metadata of a hit. Times are Unix milliseconds, the same in every process."""

    stale: bool
    """Past ``expires_ms``, within the grace period: serve it, and refresh it."""
    created_ms: int
    """When the entry was written."""
    expires_ms: int
    """When it stops being fresh; 0 = never."""
    grace_until_ms: int
    """When it stops being servable at all (``expires_ms`` when there is no grace period);
    0 = never."""
    source: str
    """``"segment"`` (read from shared memory) or ``"daemon"`` (answered over the socket)."""
    version: int = 0
    """The entry's version on this host, for `Client.cas`: it changes with every write of the
    key. 0 = unknown (a value answered from Redis that the daemon did not keep)."""
    integer: bool = False
    """The value is an integer counter (`incr`, or an int stored with `set`): `get` returns
    it as an ``int``."""


class Pong(NamedTuple):
    """The answer of `Client.ping`."""

    epoch: int
    """The daemon's epoch: it changes when the daemon restarts."""
    rtt_us: int
    """Round-trip time in microseconds."""


_SOURCES = {lib.CACHEKIT_SOURCE_SEGMENT: "segment", lib.CACHEKIT_SOURCE_DAEMON: "daemon"}
_NULL = ffi.NULL
_get = lib.cachekit_get
_get_local = lib.cachekit_get_local
# A client's `_h` until its first hit: matches no handle, so the first hit takes the address.
_NO_HIT: Tuple[Any, int] = (False, 0)
_buffer = ffi.buffer
_unbuffered = ffi.new_allocator(should_clear_after_alloc=False)

# Per-thread scratch for gets: a value buffer, its size, and the two out-parameters. cffi
# releases the GIL during a call, so threads cannot share one.
_SCRATCH_START = 16 << 10
_SCRATCH_KEEP = 1 << 20  # a larger value gets a one-off buffer
_tls = threading.local()


def _new_scratch(cap: int = _SCRATCH_START) -> Tuple[Any, int, Any, Any, Any]:
    """This thread's (buffer, its size, size_t *, buffer object, cachekit_value_info *). The
    buffer object is made once: slicing it copies the value out as bytes (40 ns) where
    ``ffi.buffer(buf, n)[:]`` would cost three times that."""
    buf = _unbuffered("uint8_t[]", cap)
    s = (buf, cap, ffi.new("size_t *"), _buffer(buf, cap), ffi.new("cachekit_value_info *"))
    _tls.s = s
    return s


def _key(key: Any) -> bytes:
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, bytes):
        return bytes(key)
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"a cachekit key is str or bytes, not {type(key).__name__}")


def _ms(value: Optional[Seconds], what: str, *, zero: bool) -> int:
    """Seconds (int, float, timedelta) as whole milliseconds, rounded up so that a positive
    duration never becomes 0 (which means "never" / "none" to the library)."""
    if value is None:
        return 0
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{what} is seconds (int, float or timedelta), not {type(value).__name__}")
    if not seconds >= 0 or (seconds == 0 and not zero) or math.isinf(seconds):
        hint = " (None: never expires; to drop a key, delete it)" if what == "ttl" else ""
        raise InvalidArgumentError(f"{what} must be {'>= 0' if zero else '> 0'} seconds, not {value!r}{hint}")
    ms = math.ceil(seconds * 1000)
    if ms >= 1 << 64:
        raise InvalidArgumentError(f"{what} of {value!r} seconds is too long")
    return ms


def _ttl_ms(ttl: Optional[Seconds]) -> int:
    """A TTL as the C library takes it: whole milliseconds, 0 for never. None and 0 both mean
    "never expires" (the rule of every binding and the CLI); a negative TTL is an error."""
    if isinstance(ttl, (int, float, timedelta)) and not isinstance(ttl, bool):
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
        if seconds < 0:
            raise InvalidArgumentError(
                f"ttl is negative ({ttl!r}): a negative TTL is refused (0 or None means never expires; "
                "to drop a key, delete it)")
    return _ms(ttl, "ttl", zero=True)


def _part(p: Any) -> str:
    if isinstance(p, bytes):
        return p.decode()
    return str(p)


def tag_path(tag: Any) -> str:
    """The path of one tag: a str as it is, a tuple's parts joined with "/"."""
    if isinstance(tag, str):
        path = tag
    elif isinstance(tag, tuple):
        if not tag:
            raise InvalidArgumentError("a tag tuple is empty; give at least one part, like ('posts', 123)")
        path = "/".join(_part(p) for p in tag)
    else:
        raise TypeError(
            f"a tag is a str like 'posts/123' or a tuple like ('posts', 123), not {type(tag).__name__} "
            f"({tag!r}); to give one tag made of parts, wrap it: tags=[('posts', 123)]"
        )
    if "\0" in path:
        raise InvalidArgumentError(f"tag {path!r} contains a NUL character")
    return path


# A result slot the library has not written: the batch failed as a whole (see
# `cachekit_set_many`).
_NO_RESULT = 0xFFFFFFFF


def _tag_list(tags: Any) -> Tuple[Any, int, List[Any]]:
    """``(const char *const *, count, keep)`` for a tags argument (NULL, 0 for none). The
    array points into the strings of `keep`: hold it until the call returns."""
    if not tags:
        return _NULL, 0, []
    if isinstance(tags, str):
        tags = (tags,)
    keep = [ffi.new("char[]", tag_path(t).encode()) for t in tags]
    if not keep:
        return _NULL, 0, keep
    return ffi.new("char *[]", keep), len(keep), keep


class _Options:
    """What a client was opened with, kept to reopen it (after fork)."""

    __slots__ = ("instance", "socket", "namespace", "redis_url", "lazy", "connect_timeout_ms",
                 "request_timeout_ms", "encryption")

    def __init__(self, instance: Optional[str], socket: Optional[Union[str, "os.PathLike[str]"]],
                 namespace: Optional[str],
                 redis_url: Optional[str], lazy: bool, connect_timeout: Optional[float],
                 request_timeout: Optional[float], encryption: Optional["_Encryption"] = None) -> None:
        self.instance = instance
        self.socket = os.fspath(socket) if socket is not None else None
        self.namespace = namespace
        self.redis_url = redis_url
        self.lazy = lazy
        self.connect_timeout_ms = _timeout_ms(connect_timeout, "connect_timeout")
        self.request_timeout_ms = _timeout_ms(request_timeout, "request_timeout")
        self.encryption = encryption

    def copy(self, **changes: Any) -> "_Options":
        new = object.__new__(_Options)
        for name in _Options.__slots__:
            setattr(new, name, changes.get(name, getattr(self, name)))
        return new


MasterKey = Union[bytes, bytearray, memoryview, str]
"""A 32-byte master key: the bytes, or text: 64 hex digits or base64 (standard or URL-safe,
padding optional), as ``CACHEKIT_MASTER_KEY`` takes it."""

_KEY_LEN = 32
_HEX = frozenset("0123456789abcdefABCDEF")


def master_key_bytes(key: Any, what: str = "encryption_key") -> bytes:
    """The 32 bytes of a master key given as bytes or as hex / base64 text (the rules of
    ``CACHEKIT_MASTER_KEY``); InvalidArgumentError saying how to make one otherwise."""
    make = "(`head -c 32 /dev/urandom | base64` makes one; in Python: os.urandom(32))"
    if isinstance(key, (bytes, bytearray, memoryview)):
        raw = bytes(key)
    elif isinstance(key, str):
        text = key.strip()
        if len(text) == 2 * _KEY_LEN and set(text) <= _HEX:
            raw = bytes.fromhex(text)
        else:
            b64 = text.rstrip("=").replace("-", "+").replace("_", "/")
            try:
                raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise InvalidArgumentError(
                    f"{what} is neither 64 hex digits nor base64 of 32 bytes {make}") from None
    else:
        raise TypeError(f"{what} is bytes or hex / base64 text, not {type(key).__name__}")
    if len(raw) != _KEY_LEN:
        raise InvalidArgumentError(f"{what} is {len(raw)} bytes; a master key is 32 bytes {make}")
    return raw


class _Encryption:
    """Encryption settings given to the constructor, as the C options take them."""

    __slots__ = ("key", "previous", "tenant", "flags", "memo_bytes")

    def __init__(self, key: Any, previous_keys: Iterable[Any], tenant: Optional[str], hash_keys: bool,
                 require_encryption: bool, memo_bytes: Optional[int] = None) -> None:
        self.key = master_key_bytes(key)
        if isinstance(previous_keys, (bytes, bytearray, memoryview, str)):
            previous_keys = (previous_keys,)  # one key, not a sequence of its bytes or characters
        prev = [master_key_bytes(k, f"previous_keys[{i}]") for i, k in enumerate(previous_keys)]
        self.previous = b"".join(prev)
        if tenant is not None:
            if not isinstance(tenant, str):
                raise TypeError(f"tenant is a str, not {type(tenant).__name__}")
            if not tenant or "\0" in tenant:
                raise InvalidArgumentError(f"tenant {tenant!r} is empty or contains a NUL character")
        self.tenant = tenant
        self.flags = ((lib.CACHEKIT_ENCRYPT_HASH_KEYS if hash_keys else 0)
                      | (lib.CACHEKIT_ENCRYPT_REQUIRE if require_encryption else 0))
        self.memo_bytes = 0  # the C option's "default" (1 MiB)
        if memo_bytes is not None:
            if isinstance(memo_bytes, bool) or not isinstance(memo_bytes, int):
                raise TypeError(f"encryption_memo_bytes is an int, not {type(memo_bytes).__name__}")
            if memo_bytes < 0:
                raise InvalidArgumentError(
                    f"encryption_memo_bytes is {memo_bytes}; give a number of bytes, 0 to turn the memo off, "
                    "or None for the default (1 MiB)")
            if memo_bytes == 0:
                self.flags |= lib.CACHEKIT_ENCRYPT_NO_MEMO
            else:
                self.memo_bytes = memo_bytes


def _encryption(key: Any, previous_keys: Iterable[Any], tenant: Optional[str], hash_keys: bool,
                require_encryption: bool, memo_bytes: Optional[int] = None) -> Optional[_Encryption]:
    if key is not None:
        return _Encryption(key, previous_keys, tenant, hash_keys, require_encryption, memo_bytes)
    given = [name for name, v in (("previous_keys", previous_keys), ("tenant", tenant),
                                   ("hash_keys", hash_keys), ("require_encryption", require_encryption),
                                   ("encryption_memo_bytes", memo_bytes is not None)) if v]
    if given:
        raise InvalidArgumentError(
            f"{', '.join(given)} given without encryption_key: give encryption_key= too; with the key "
            "in CACHEKIT_MASTER_KEY / CACHEKIT_MASTER_KEY_FILE, set CACHEKIT_PREVIOUS_MASTER_KEYS, "
            "CACHEKIT_TENANT, CACHEKIT_HASH_KEYS=1, CACHEKIT_REQUIRE_ENCRYPTION=1, "
            "CACHEKIT_ENCRYPTION_MEMO_BYTES instead")
    return None


def _env_key_set() -> bool:
    """Whether the environment gives a master key (the C library reads it when no
    encryption_key is given, and refuses to open if it is malformed)."""
    return any(os.environ.get(n, "").strip() for n in ("CACHEKIT_MASTER_KEY", "CACHEKIT_MASTER_KEY_FILE"))


def _timeout_ms(seconds: Optional[float], what: str) -> int:
    ms = _ms(seconds, what, zero=False)
    if ms > 0xFFFF_FFFF:
        raise InvalidArgumentError(f"{what} of {seconds!r} seconds is too long (at most 49 days)")
    return ms


def _cstr(value: Optional[str], what: str, keep: List[Any]) -> Any:
    if value is None:
        return _NULL
    if not isinstance(value, str):
        raise TypeError(f"{what} is a str, not {type(value).__name__}")
    if "\0" in value:
        raise InvalidArgumentError(f"{what} {value!r} contains a NUL character")
    c = ffi.new("char[]", value.encode())
    keep.append(c)
    return c


_CLIENT_NAME = "python:" + (os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python")


def _open(opts: _Options, lazy: bool) -> Any:
    keep: List[Any] = []
    o = ffi.new("cachekit_options *")
    o.struct_size = ffi.sizeof("cachekit_options")
    o.flags = lib.CACHEKIT_OPEN_LAZY if lazy else 0
    o.socket_path = _cstr(opts.socket, "socket", keep)
    o.instance = _cstr(opts.instance, "instance", keep)
    o.ns = _cstr(opts.namespace, "namespace", keep)
    o.client_name = _cstr(_CLIENT_NAME[:200], "client name", keep)
    o.redis_url = _cstr(opts.redis_url, "redis_url", keep)
    o.connect_timeout_ms = opts.connect_timeout_ms
    o.request_timeout_ms = opts.request_timeout_ms
    enc = opts.encryption
    if enc is not None:
        key = ffi.new("uint8_t[]", enc.key)
        keep.append(key)
        o.encryption_key, o.encryption_key_len = key, len(enc.key)
        if enc.previous:
            prev = ffi.new("uint8_t[]", enc.previous)
            keep.append(prev)
            o.previous_keys, o.previous_keys_count = prev, len(enc.previous) // _KEY_LEN
        o.tenant = _cstr(enc.tenant, "tenant", keep)
        o.encryption_flags = enc.flags
        o.encryption_memo_bytes = enc.memo_bytes
    out = ffi.new("cachekit_client **")
    rc = lib.cachekit_client_open(o, out)
    if rc != OK:
        raise_for(rc)
    return out[0]


# Every live client, for the at-fork hook.
_LIVE: "weakref.WeakSet[Client]" = weakref.WeakSet()


class Client(ManageMixin, QueryMixin, Native):
    """A client of one cachekitd, bound to one namespace.

    ``instance`` / ``socket``: which daemon (``socket`` wins; both None: ``$CACHEKIT_SOCKET``,
    ``$CACHEKIT_INSTANCE``, else the "default" instance). ``namespace``: entries of different
    namespaces never meet (None: ``$CACHEKIT_NAMESPACE``, else "default"). ``serializer``:
    "pickle" (default), "json", "msgpack", None (bytes in, bytes out) or an object with
    ``dumps``/``loads``. ``redis_url``: go to Redis directly while the daemon is down.
    ``lazy``: connect on first use (opening succeeds while the daemon is down). Timeouts are
    seconds (None: the library's defaults, 1 s to connect, 5 s per request).

    Encryption (AES-256-GCM in this process: the daemon, its segment and Redis hold ciphertext
    only; keys, namespaces and tags stay plaintext, counters too). ``encryption_key``: the
    32-byte master key (bytes, or 64 hex digits / base64 text); None: ``$CACHEKIT_MASTER_KEY``
    or ``$CACHEKIT_MASTER_KEY_FILE`` (a file not readable by group or other) if set, else no
    encryption. ``previous_keys``: older master keys still accepted for reading (rotation).
    ``tenant``: whose key is derived (None: the namespace). ``hash_keys``: send an HMAC of each
    key instead of the key. ``require_encryption``: a plaintext value read raises
    `PlaintextValueError` instead of being returned. Reads raise `DecryptError` (wrong key or
    tenant, tampered or moved value) and `EncryptedValueError` (no key configured).
    ``encryption_memo_bytes``: budget of the memo of opened values (None: 1 MiB; 0: off): the
    plaintext of values this client already decrypted (up to 16 KiB each) is kept beside their
    exact stored bytes, so a hit whose bytes did not change skips AES-GCM; it stays in this
    process's memory until evicted or the client is closed (zeroed then).

    Raises `UnavailableError` when the daemon is not running (unless ``lazy``).
    """

    _free = lib.cachekit_client_close
    _kind = "client"

    def __init__(
        self,
        instance: Optional[str] = None,
        socket: Optional[Union[str, "os.PathLike[str]"]] = None,
        namespace: Optional[str] = "default",
        serializer: Union[SerializerName, Serializer, None] = "pickle",
        redis_url: Optional[str] = None,
        lazy: bool = False,
        connect_timeout: Optional[float] = None,
        request_timeout: Optional[float] = None,
        *,
        encryption_key: Optional[MasterKey] = None,
        previous_keys: Iterable[MasterKey] = (),
        tenant: Optional[str] = None,
        hash_keys: bool = False,
        require_encryption: bool = False,
        encryption_memo_bytes: Optional[int] = None,
    ) -> None:
        self._ptr = None  # set first: the object is sane even if opening fails
        self._h = _NO_HIT
        self._closed = False
        self._lock = threading.Lock()
        self._parent: Optional[Client] = None
        enc = _encryption(encryption_key, previous_keys, tenant, hash_keys, require_encryption,
                          encryption_memo_bytes)
        self._opts = _Options(instance, socket, namespace, redis_url, lazy, connect_timeout, request_timeout, enc)
        self._encrypted = enc is not None or _env_key_set()
        self._serializer = resolve(serializer)
        self._dumps = self._serializer.dumps
        self._loads = self._serializer.loads
        self._hit_setup()
        Native.__init__(self, _open(self._opts, lazy))
        self._pid = os.getpid()
        _LIVE.add(self)

    # ---- handle lifecycle ------------------------------------------------------------------

    def _reopen(self) -> Any:
        """The handle, opened again (lazily connected) if fork dropped it; ClosedError after
        close()."""
        with self._lock:
            if self._closed:
                raise ClosedError("this client is closed; open a new one")
            ptr = self._ptr
            if ptr is None or self._pid != os.getpid():
                self._ptr = None  # in a child that bypassed the hook: drop the parent's handle
                self._h = _NO_HIT
                ptr = self._ptr = ffi.gc(self._open_raw(), lib.cachekit_client_close)
                self._pid = os.getpid()
            return ptr

    def _open_raw(self) -> Any:
        parent = self._parent
        if parent is not None and not parent._closed:
            out = ffi.new("cachekit_client **")
            ns = self._opts.namespace or "default"  # always set on a with_namespace client
            rc = lib.cachekit_client_with_namespace(parent._live(), ns.encode(), out)
            if rc != OK:
                raise_for(rc)
            return out[0]
        return _open(self._opts, lazy=True)

    def _live(self) -> Any:
        ptr = self._ptr
        if ptr is None:
            ptr = self._reopen()
        return ptr

    def _handle(self) -> Any:
        """`_live` plus a pid check: for calls that will use the socket anyway."""
        ptr = self._ptr
        if ptr is None or self._pid != os.getpid():
            ptr = self._reopen()
        return ptr

    def _forget_after_fork(self) -> None:
        self._lock = threading.Lock()  # it may have been held by a thread that is not here
        self._ptr = None  # closes the child's copy of the handle
        self._h = _NO_HIT

    def close(self) -> None:
        """Closes the client. Idempotent. A call running in another thread finishes first
        (the handle is freed when it returns); later calls raise `ClosedError`."""
        with self._lock:
            self._closed = True
            self._ptr = None
            self._h = _NO_HIT
        _LIVE.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Client":
        return self

    @property
    def namespace(self) -> Optional[str]:
        """The namespace given (None: taken from ``$CACHEKIT_NAMESPACE`` or "default")."""
        return self._opts.namespace

    @property
    def serializer(self) -> Serializer:
        return self._serializer

    @property
    def encrypted(self) -> bool:
        """Whether values are encrypted: an ``encryption_key`` was given, or the environment
        set one when the client was opened."""
        return self._encrypted

    def __repr__(self) -> str:
        where = self._opts.socket or f"instance {self._opts.instance or '$CACHEKIT_INSTANCE/default'}"
        state = (" encrypted" if self._encrypted else "") + (" closed" if self._closed else "")
        return f"<cachekit_shm.Client namespace={self.namespace!r} {where} serializer={self._serializer.name}{state}>"

    def with_namespace(self, namespace: str) -> "Client":
        """A client on another namespace sharing this one's connections, segment and
        serializer (no new connection). Close each one; in any order."""
        if not isinstance(namespace, str):
            raise TypeError(f"namespace is a str, not {type(namespace).__name__}")
        if "\0" in namespace:
            raise InvalidArgumentError(f"namespace {namespace!r} contains a NUL character")
        out = ffi.new("cachekit_client **")
        rc = lib.cachekit_client_with_namespace(self._handle(), namespace.encode(), out)
        if rc != OK:
            raise_for(rc)
        child = object.__new__(type(self))
        child._ptr = None
        child._h = _NO_HIT
        child._closed = False
        child._lock = threading.Lock()
        child._parent = self
        child._opts = self._opts.copy(namespace=namespace)
        child._serializer = self._serializer
        child._encrypted = self._encrypted
        child._dumps = self._dumps
        child._loads = self._loads
        child._hit_setup()
        Native.__init__(child, out[0])
        child._pid = os.getpid()
        _LIVE.add(child)
        return child

    # ---- reads -------------------------------------------------------------------------------
    # get / get_raw / _local_value / _local_raw repeat the same few lines instead of sharing a
    # helper: a hit costs about half a microsecond, and a Python call more is ~60 ns of it.

    def get(self, key: Key, default: Any = None) -> Any:
        """The value of `key` (deserialized), or `default` on a miss. A stale hit (past its
        TTL, within grace) is returned like a fresh one; `get_with_info` tells them apart.

        Never raises because the daemon is down: that is a miss.
        """
        h = self._h
        if h[0] is not self._ptr:
            h = self._hit_handle()
        r = _hit(h[1], key, self._hit_flags)  # `h` holds the handle for the call
        if type(r) is self._hit_raw:  # stored bytes to load
            try:
                return self._hit_loads(r)
            except Exception as e:
                self._hit_load_failed(r, e)
                raise
        if r is None:
            return default
        if type(r) is tuple:
            return self._hit_slow_value(r[0], h, key, _HIT_INT, default)
        return r

    def get_raw(self, key: Key) -> Optional[bytes]:
        """The stored bytes of `key` (no deserialization), or None on a miss."""
        h = self._h
        if h[0] is not self._ptr:
            h = self._hit_handle()
        r = _hit(h[1], key, 0)  # `h` holds the handle for the call
        if type(r) is tuple:
            return self._hit_slow(r[0], h, key, 0)  # type: ignore[return-value]
        return r  # type: ignore[return-value]

    def get_with_info(self, key: Key) -> Optional[Tuple[Any, Info]]:
        """``(value, Info)`` for a hit, None for a miss. ``Info.stale``: serve the value and
        refresh it (stale-while-revalidate)."""
        hit = self.get_raw_with_info(key)
        if hit is None:
            return None
        return self._value(hit[0], hit[1]), hit[1]

    def _value(self, raw: bytes, info: Optional[Info]) -> Any:
        """Stored bytes as the value `get` returns: an int for a counter, else deserialized."""
        if info is not None and info.integer:
            return int(raw)
        return self._loads(raw)

    def get_raw_with_info(self, key: Key) -> Optional[Tuple[bytes, Info]]:
        """``(stored bytes, Info)`` for a hit, None for a miss."""
        ptr = self._live()
        k = _key(key)
        try:
            buf, cap, lenp, view, info = _tls.s
        except AttributeError:
            buf, cap, lenp, view, info = _new_scratch()
        rc = _get(ptr, k, len(k), buf, cap, lenp, info)
        if rc == 0:
            return view[: lenp[0]], _info(info)
        if rc == 1:
            return None
        return self._get_slow(rc, ptr, k, want_info=True)  # type: ignore[return-value]

    def get_local(self, key: Key, default: Any = None) -> Any:
        """The value of `key` if the shared segment holds it, else `default`: never asks the
        daemon, so it never waits (no socket, no Redis, no reconnect), whatever state the
        daemon is in. A key the daemon could still answer for (from Redis, or one that it has
        not put in the segment) is `default` here; `get` asks for it. Used by `AsyncClient` to
        serve hits on the event loop."""
        return self._local_value(_key(key), default)

    def _local_value(self, k: bytes, default: Any) -> Any:
        """The value of `k` from the segment (`cachekit_get_local`), or `default`."""
        h = self._h
        if h[0] is not self._ptr:
            h = self._hit_handle()
        r = _hit(h[1], k, _HIT_LOCAL | self._hit_flags)
        if type(r) is self._hit_raw:  # stored bytes to load
            try:
                return self._hit_loads(r)
            except Exception as e:
                self._hit_load_failed(r, e)
                raise
        if r is None:
            return default
        if type(r) is tuple:
            return self._hit_slow_value(r[0], h, k, _HIT_LOCAL | _HIT_INT, default)
        return r

    def _fresh_local_value(self, k: bytes, default: Any) -> Any:
        """`k`'s value from the segment if it is there and fresh, else `default` (the hit path
        of `query`: as cheap as `_local_value`). A value that fails to load is `default`."""
        ptr = self._ptr
        if ptr is None:
            ptr = self._reopen()
        try:
            buf, cap, lenp, view, info = _tls.s
        except AttributeError:
            buf, cap, lenp, view, info = _new_scratch()
        if _get_local(ptr, k, len(k), buf, cap, lenp, info) != 0 or info.stale:
            return default
        if info.integer:
            return int(view[: lenp[0]])
        try:
            return self._loads(view[: lenp[0]])
        except SerializationError:
            return default

    def _local_raw(self, k: bytes) -> Optional[bytes]:
        """The stored bytes of `k` from the segment (`cachekit_get_local`), or None."""
        h = self._h
        if h[0] is not self._ptr:
            h = self._hit_handle()
        r = _hit(h[1], k, _HIT_LOCAL)
        if type(r) is tuple:
            return self._hit_slow(r[0], h, k, _HIT_LOCAL)  # type: ignore[return-value]
        return r  # type: ignore[return-value]

    def _local_raw_with_info(self, k: bytes) -> Optional[Tuple[bytes, Info]]:
        """``(stored bytes, Info)`` of `k` from the segment, or None."""
        ptr = self._live()
        try:
            buf, cap, lenp, view, info = _tls.s
        except AttributeError:
            buf, cap, lenp, view, info = _new_scratch()
        rc = _get_local(ptr, k, len(k), buf, cap, lenp, info)
        if rc == 0:
            return view[: lenp[0]], _info(info)
        if rc == 1:
            return None
        return self._get_slow(rc, ptr, k, want_info=True, get=_get_local)  # type: ignore[return-value]

    def _hit_setup(self) -> None:
        """How `get` reads a hit through `_hit`. For the default serializer: pickle.loads
        called directly (PickleSerializer.loads's frame around it is ~45 ns; its errors are
        wrapped the same way in `get`), and HIT_PICKLE: a pickled bytes or str is unpickled in
        C, any other pickle comes back as a bytearray (`_hit_raw`) for pickle.loads."""
        if self._serializer is _PICKLE:
            self._hit_loads, self._hit_raw, self._hit_flags = pickle.loads, bytearray, _HIT_INT | _HIT_PICKLE
        else:
            self._hit_loads, self._hit_raw, self._hit_flags = self._loads, bytes, _HIT_INT

    def _hit_handle(self) -> Tuple[Any, int]:
        """``(handle, its address)`` for `_hit`, taken again whenever ``_ptr`` changed (the
        first hit, a reopen after fork): reopens the handle like `_live`. The caller keeps the
        tuple while `_hit` runs, so the handle cannot be freed under the call; ``_h`` is
        reset wherever ``_ptr`` is dropped (close, fork), so it never keeps a handle alive."""
        ptr = self._ptr
        if ptr is None:
            ptr = self._reopen()
        h = self._h = (ptr, int(ffi.cast("uintptr_t", ptr)))
        if self._ptr is not ptr:  # closed (or reopened) meanwhile: keep no reference to it
            self._h = _NO_HIT
        return h

    def _hit_load_failed(self, raw: bytearray, e: Exception) -> None:
        """`get` / `get_local`: pickle.loads (called directly for the default serializer)
        failed on `raw`: raises the serializer's error for it, as PickleSerializer.loads
        would. Returns when `e` is already the configured serializer's own error."""
        if self._hit_loads is not self._loads:
            raise load_error("pickle", raw, e) from e

    def _hit_slow_value(self, code: int, h: Tuple[Any, int], key: Any, flags: int, default: Any) -> Any:
        """`get` / `get_local` after `_hit` answered ``(code,)``: the value (an int for a
        counter, else deserialized), or `default` on a miss."""
        r = self._hit_slow(code, h, key, flags)
        if r is None:
            return default
        if type(r) is bytes:
            return self._loads(r)
        return r

    def _hit_slow(self, code: int, h: Tuple[Any, int], key: Any, flags: int) -> Any:
        """The rest of a get that `_hit` answered ``(code,)``: a key it does not take (code 0:
        converted as every method does, and read again), a value over its 16 KiB buffer
        (read through cffi into this thread's buffer, which grows once to hold values up to
        its limit), or a failure (raised). Returns
        what `_hit` returns for a hit (bytes, or an int for a counter with HIT_INT) or None."""
        k = _key(key)
        if code == 0:
            r = _hit(h[1], k, flags)
            if type(r) is not tuple:
                return r
            code = r[0]  # a bytes key is always taken: not 0 again
        if code != BUFFER_TOO_SMALL:
            raise_for(code)
        # Into this thread's buffer, grown by an earlier large value (one call), and grown
        # now if this value does not fit it either (`_get_slow`).
        get = _get_local if flags & _HIT_LOCAL else _get
        want_info = bool(flags & _HIT_INT)
        try:
            buf, cap, lenp, view, info = _tls.s
        except AttributeError:
            buf, cap, lenp, view, info = _new_scratch()
        rc = get(h[0], k, len(k), buf, cap, lenp, info if want_info else _NULL)
        hit: Optional[Tuple[bytes, Optional[Info]]]
        if rc == OK:
            hit = view[: lenp[0]], (_info(info) if want_info else None)
        else:
            hit = self._get_slow(rc, h[0], k, want_info=want_info, get=get)
        if hit is None:
            return None
        return self._value(hit[0], hit[1]) if hit[1] is not None and hit[1].integer else hit[0]

    def _get_slow(self, rc: int, ptr: Any, k: bytes, want_info: bool = False,
                  get: Any = _get) -> Optional[Tuple[bytes, Optional[Info]]]:
        """A get (`get`: cachekit_get or cachekit_get_local) that did not fit the thread's
        buffer (retried with a larger one), or failed."""
        while rc == BUFFER_TOO_SMALL:
            _, cap, lenp, _, info = _tls.s
            need = lenp[0]
            if need <= _SCRATCH_KEEP:  # grow this thread's buffer, and keep it
                buf, cap, lenp, _, info = _new_scratch(max(need, min(2 * cap, _SCRATCH_KEEP)))
            else:  # a one-off buffer for a value this large
                buf, cap = _unbuffered("uint8_t[]", need), need
            rc = get(ptr, k, len(k), buf, cap, lenp, info if want_info else _NULL)
            if rc == OK:
                return _buffer(buf, lenp[0])[:], (_info(info) if want_info else None)
        if rc == MISS:
            return None
        raise_for(rc)
        return None  # unreachable

    def get_many(self, keys: Iterable[Key]) -> Dict[Any, Any]:
        """``{key: value}`` for the keys that hit (misses are left out), keys as given. Hits
        come from shared memory; the misses are then asked of the daemon in one pass."""
        return self._get_many(keys, self._value)

    def get_many_raw(self, keys: Iterable[Key]) -> Dict[Any, bytes]:
        """Like `get_many`, with the stored bytes."""
        return self._get_many(keys, None)

    def _get_many(self, keys: Iterable[Key], loads: Any) -> Dict[Any, Any]:
        keys = list(keys)
        if not keys:
            return {}
        kb = [_key(k) for k in keys]
        views = [ffi.from_buffer("uint8_t[]", k) for k in kb]  # no copy; kept alive by `views`
        out = ffi.new("cachekit_batch **")
        rc = lib.cachekit_get_many(self._handle(), ffi.new("uint8_t *[]", views),
                                   [len(k) for k in kb], len(kb), out)
        if rc != OK:
            raise_for(rc)
        result: Dict[Any, Any] = {}
        with Batch(out[0]) as batch:
            b = batch._live()
            vp = ffi.new("const uint8_t **")
            lp = ffi.new("size_t *")
            info = ffi.new("cachekit_value_info *")
            for i, key in enumerate(keys):
                rc = lib.cachekit_batch_get(b, i, vp, lp, info)
                if rc == OK:
                    raw = _buffer(vp[0], lp[0])[:]
                    result[key] = loads(raw, _info(info)) if loads is not None else raw
                elif rc != MISS:
                    raise_for(rc)
        return result

    # ---- writes ------------------------------------------------------------------------------

    def set(self, key: Key, value: Any, ttl: Optional[Seconds] = None, grace: Seconds = 0,
            tags: Tags = ()) -> None:
        """Stores `value` (serialized) under `key`. When it returns, no read on the host that
        starts afterwards sees an older value.

        ``ttl``: seconds (or timedelta) until it expires; None or 0 = never (until evicted,
        deleted or invalidated); negative is an error. ``grace``: how long after expiry it may still be served, marked
        stale. ``tags``: tag paths for `invalidate` ("posts/123" or ("posts", 123); at most 8).

        Raises `UnavailableError` / `CachekitTimeoutError` when the daemon cannot take it,
        `TooLargeError`, `InvalidArgumentError`, `SerializationError`.
        """
        n = counter_bytes(value, self._serializer.name, self._encrypted)
        if n is not None:
            self._set_i64(_key(key), value, _ttl_ms(ttl), _ms(grace, "grace", zero=True),
                          _tag_list(tags))
            return
        self._set(key, self._dumps(value), ttl, grace, tags)

    def _set_i64(self, k: bytes, value: int, ttl_ms: int, grace_ms: int, tags: Tuple[Any, int, List[Any]]) -> None:
        """Stores an int as a counter (`cachekit_set_i64`)."""
        o = ffi.new("cachekit_set_options *")
        o.struct_size = ffi.sizeof("cachekit_set_options")
        o.ttl_ms = ttl_ms
        o.grace_ms = grace_ms
        o.tags, o.tag_count = tags[0], tags[1]
        rc = lib.cachekit_set_i64(self._handle(), k, len(k), value, o)
        if rc != OK:
            raise_for(rc)

    def set_raw(self, key: Key, value: Union[bytes, bytearray, memoryview], ttl: Optional[Seconds] = None,
                grace: Seconds = 0, tags: Tags = ()) -> None:
        """Stores bytes as they are (no serializer)."""
        if not isinstance(value, bytes):
            if not isinstance(value, (bytearray, memoryview)):
                raise TypeError(f"set_raw stores bytes, not {type(value).__name__}")
            value = bytes(value)
        self._set(key, value, ttl, grace, tags)

    def _set(self, key: Key, data: bytes, ttl: Optional[Seconds], grace: Seconds, tags: Tags) -> None:
        k = _key(key)
        ttl_ms = _ttl_ms(ttl)
        grace_ms = _ms(grace, "grace", zero=True)
        ctags, ntags, _keep = _tag_list(tags)
        rc = lib.cachekit_set(self._handle(), k, len(k), data, len(data), ttl_ms, grace_ms, ctags, ntags)
        if rc != OK:
            raise_for(rc)

    def set_many(self, mapping: Union[Mapping[Key, Any], Iterable[Tuple[Key, Any]]],
                 ttl: Optional[Seconds] = None, grace: Seconds = 0, tags: Tags = ()) -> None:
        """`set` for each item, with the same ttl, grace and tags, in one request (one round
        trip; the daemon applies the items within one turn of its writer; more than 1000 items
        go as several requests). Ints stored as counters (see `incr`) take a request each, in
        their place: the items before one are sent first, so a key given twice ends with its
        later value. Every item is tried: an item that fails (too large, ...) does not stop
        the others, and the first failure then raises, after the others were stored."""
        items = mapping.items() if isinstance(mapping, Mapping) else mapping
        ttl_ms = _ttl_ms(ttl)
        grace_ms = _ms(grace, "grace", zero=True)
        tag_list = _tag_list(tags)
        dumps = self._dumps
        name = self._serializer.name
        pairs: List[Tuple[bytes, bytes]] = []
        first: Optional[BaseException] = None

        def send_pairs() -> Optional[BaseException]:
            """Sends the items gathered so far; the error of the first that failed."""
            codes = self._set_many_codes(pairs, ttl_ms, grace_ms, tag_list)
            pairs.clear()
            failed = next((c for c in codes if c != OK), None)
            if failed is None:
                return None
            try:
                raise_for(failed)  # now, while its message is the thread's last error
            except CachekitError as e:
                return e
            return None

        for key, value in items:
            k = _key(key)
            if counter_bytes(value, name, self._encrypted) is not None:
                sent = send_pairs()  # always: the items before this one go first
                first = first or sent
                try:
                    self._set_i64(k, value, ttl_ms, grace_ms, tag_list)
                except CachekitError as e:
                    first = first or e
                continue
            pairs.append((k, dumps(value)))
        sent = send_pairs()
        first = first or sent
        if first is not None:
            raise first

    def _set_many_codes(self, pairs: List[Tuple[bytes, bytes]], ttl_ms: int, grace_ms: int,
                        tags: Tuple[Any, int, List[Any]]) -> List[int]:
        """`cachekit_set_many` of ``(key, bytes)`` pairs: each item's result code (the first
        failing one's message is the thread's last error). Raises when the batch fails as a
        whole (bad tags, the daemon unreachable)."""
        if not pairs:
            return []
        keys = [ffi.from_buffer("uint8_t[]", k) for k, _ in pairs]  # no copy; kept alive here
        values = [ffi.from_buffer("uint8_t[]", v) for _, v in pairs]
        n = len(pairs)
        results = ffi.new("cachekit_result[]", [_NO_RESULT] * n)
        rc = lib.cachekit_set_many(self._handle(), ffi.new("uint8_t *[]", keys), [len(k) for k, _ in pairs],
                                   ffi.new("uint8_t *[]", values), [len(v) for _, v in pairs], n,
                                   ttl_ms, grace_ms, tags[0], tags[1], results)
        if rc != OK and results[0] == _NO_RESULT:
            raise_for(rc)
        return list(results)

    def delete_many(self, keys: Iterable[Key]) -> int:
        """Removes each of `keys` in one request (split as `set_many` splits); returns how many
        were there. Every key is tried; the first that could not be removed then raises."""
        codes = self._delete_many_codes([_key(k) for k in keys])
        failed = next((c for c in codes if c not in (OK, MISS)), None)
        if failed is not None:
            raise_for(failed)
        return sum(1 for c in codes if c == OK)

    def _delete_many_codes(self, keys: List[bytes]) -> List[int]:
        """`cachekit_delete_many`: each key's code (OK: it was there, MISS: it was not)."""
        if not keys:
            return []
        views = [ffi.from_buffer("uint8_t[]", k) for k in keys]
        results = ffi.new("cachekit_result[]", [_NO_RESULT] * len(keys))
        rc = lib.cachekit_delete_many(self._handle(), ffi.new("uint8_t *[]", views),
                                      [len(k) for k in keys], len(keys), results)
        if rc != OK and results[0] == _NO_RESULT:
            raise_for(rc)
        return list(results)

    def delete(self, key: Key) -> bool:
        """Removes `key`; True if it was there."""
        k = _key(key)
        rc = lib.cachekit_delete(self._handle(), k, len(k))
        if rc == OK:
            return True
        if rc == MISS:
            return False
        raise_for(rc)
        return False  # unreachable

    def invalidate(self, *tags: Tag, exact: bool = False) -> None:
        """Drops every entry of this namespace tagged with one of `tags` or (unless `exact`)
        with a tag below one: ``invalidate("posts/123")`` also drops ``posts/123/comments``,
        never ``posts/1234``. O(1) per tag, visible on the whole host when it returns."""
        if len(tags) == 1 and isinstance(tags[0], (list, set, frozenset)):
            tags = tuple(tags[0])  # invalidate(["a", "b"]) as well as invalidate("a", "b")
        ctags, ntags, _keep = _tag_list(tags)
        if not ntags:
            return
        flags = lib.CACHEKIT_INVALIDATE_EXACT if exact else 0
        rc = lib.cachekit_invalidate(self._handle(), ctags, ntags, flags)
        if rc != OK:
            raise_for(rc)

    def clear(self) -> None:
        """Drops every entry of this namespace (other namespaces are untouched). O(1)."""
        rc = lib.cachekit_clear(self._handle())
        if rc != OK:
            raise_for(rc)

    # ---- the daemon ----------------------------------------------------------------------------

    def stats(self) -> Dict[str, int]:
        """The daemon's counters and this client's own (``client.*``), by name."""
        out = ffi.new("cachekit_stats **")
        rc = lib.cachekit_stats_fetch(self._handle(), out)
        if rc != OK:
            raise_for(rc)
        result: Dict[str, int] = {}
        with StatsSnapshot(out[0]) as snap:
            s = snap._live()
            name = ffi.new("const char **")
            value = ffi.new("uint64_t *")
            for i in range(lib.cachekit_stats_len(s)):
                if lib.cachekit_stats_entry(s, i, name, value) == OK:
                    result[ffi.string(name[0]).decode()] = int(value[0])
        return result

    def ping(self) -> Pong:
        """A round trip to the daemon: its epoch and the round-trip time. Raises
        `UnavailableError` when it is down."""
        epoch = ffi.new("uint64_t *")
        rtt = ffi.new("uint64_t *")
        rc = lib.cachekit_ping(self._handle(), epoch, rtt)
        if rc != OK:
            raise_for(rc)
        return Pong(int(epoch[0]), int(rtt[0]))


def _info(info: Any) -> Info:
    return Info(bool(info.stale), info.created_ms, info.expires_ms, info.grace_until_ms,
                _SOURCES.get(info.source, "daemon"), info.version, bool(info.integer))


def _after_fork_in_child() -> None:
    for client in list(_LIVE):
        client._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def version() -> str:
    """The version of the bundled libcachekit."""
    return ffi.string(lib.cachekit_version()).decode()


_default_lock = threading.Lock()
_default: Optional[Client] = None


def default_client() -> Client:
    """The process's shared client for `cached` when none is given: opened lazily (it works
    whether or not the daemon is up yet) from the environment: ``$CACHEKIT_SOCKET`` or
    ``$CACHEKIT_INSTANCE``, ``$CACHEKIT_NAMESPACE``, ``$CACHEKIT_REDIS_URL``; pickle."""
    global _default
    c = _default
    if c is None or c.closed:
        with _default_lock:
            c = _default
            if c is None or c.closed:
                c = _default = Client(namespace=None, lazy=True)
    return c


def set_default_client(client: Optional[Client]) -> None:
    """Sets (or, with None, forgets) the client `cached` uses when given none."""
    global _default
    with _default_lock:
        _default = client

"""A Django cache backend over cachekitd: every process on the host shares one cache.

Configured like Django's Redis backend::

    CACHES = {
        "default": {
            "BACKEND": "cachekit_shm.django.CachekitCache",
            "LOCATION": "default",            # an instance name, or a socket path (has a "/")
            "TIMEOUT": 300,                   # Django's default timeout, seconds (None: forever)
            "KEY_PREFIX": "", "VERSION": 1,   # Django's key making, unchanged
            "OPTIONS": {
                "namespace": "django",        # cachekit namespace (default "django")
                "connect_timeout": 1.0,       # seconds
                "request_timeout": 5.0,       # seconds
                "redis_url": None,            # direct Redis fallback while cachekitd is down
                "pickle_protocol": None,      # default pickle.HIGHEST_PROTOCOL
                "IGNORE_EXCEPTIONS": False,   # True: calls while cachekitd is down are
                                              # logged no-ops (see _django_outage.py)
                # Encryption (AES-256-GCM in each process; see cachekit_shm.Client):
                "ENCRYPTION_KEY": None,       # 32 bytes, 64 hex digits or base64;
                                              # None: $CACHEKIT_MASTER_KEY(_FILE) if set
                "PREVIOUS_KEYS": [],          # older master keys still read (rotation)
                "TENANT": None,               # whose key (None: the namespace)
                "HASH_KEYS": False,           # send an HMAC of each key, not the key
                "REQUIRE_ENCRYPTION": False,  # a plaintext value read raises
                "ENCRYPTION_MEMO_BYTES": None,  # memo of opened values (None: 1 MiB, 0: off)
            },
        }
    }

Semantics are Django's: ``timeout`` DEFAULT_TIMEOUT is the cache's default, None keeps the
entry until it is evicted, zero or negative expires it at once (``set`` deletes the key,
``add`` stores nothing). Keys are Django keys (``make_key``, ``validate_key`` with Django's
own warnings), encoded as UTF-8; values are pickled, except exact ints (see below). Hits are
read from the shared segment with no syscall; writes go to the daemon. A value over the
daemon's limit (``--max-value-bytes``) makes ``set`` raise ``TooLargeError`` after deleting
the key (no older value stays readable, as with Django's memcached backend); ``set_many``
returns such keys instead. Writes while cachekitd is down raise ``UnavailableError`` (a
``ConnectionError``); gets miss, whether the daemon went down before or after the process
first used the cache (the client connects on first use, and attaches by itself once the
daemon is back). Once a process has found the daemon gone (its socket refused, a connection
closed under a request), it no longer reads that daemon's shared memory, so a ``delete`` or
``invalidate_tags`` that failed that way is never followed, in that process, by a read of the
value it meant to remove.

``get_or_set(key, callable)`` (and ``aget_or_set``) compute once per host: on a miss one caller
holds the key's fill lease (`Client.query`) and runs the callable; every other caller, in any
process, waits for its value (up to 10 s, then computes it itself). A value computed while
the key was written, deleted or invalidated is returned to its caller but not stored, so the
get → miss → read the database → set race cannot leave an old row cached after the write's
invalidation. A callable that raises reaches its caller only. ``aget_or_set`` runs the
callable in the executor (or awaits it, if it is a coroutine function). A default that is
not callable, or a timeout of 0, goes through ``add`` as in Django.

Atomic operations (one request each, applied by the daemon's single writer, so exact across
every process of the host; across hosts too when cachekitd is configured with Redis):

- ``add`` stores only if the key is absent (an expired key is absent) and says whether it did:
  of several processes racing to ``add`` one key, exactly one gets True.
- ``incr``/``decr`` add to a counter and return the new value. A missing key raises
  ValueError (Django's contract); a value that is not a number raises what ``value + delta``
  raises (TypeError for None or a str, as Django's BaseCache), leaving it unchanged. The
  counter keeps its remaining TTL (as Django's local-memory and Redis backends do) and its tags.
- ``touch`` gives an existing entry a new TTL (None: no expiry) and keeps its value and tags.

Ints: an exact ``int`` (not a bool) within 64 bits, set without tags, is stored as a counter
(its decimal digits, the format every cachekit client reads as an integer), so ``set(k, 1)``
then ``incr(k)`` is one request that the daemon applies; ``get`` returns the int. Other values
(a bool, a float, a larger int, an int set with tags, a value written before this format) are
pickled, and their ``incr`` is a compare-and-set on the entry's version, retried while other
writers change the key in between: still exact, a few requests instead of one.

The django-redis extras, with django-redis's meanings: ``ttl(key)`` (whole seconds left; None
when the entry never expires; 0 when it is missing or expired), ``pttl(key)`` (the same in
milliseconds), ``expire(key, timeout)``, ``persist(key)``, ``delete_pattern(pattern)`` (returns
how many entries it deleted), ``iter_keys(pattern)`` / ``keys(pattern)`` (the keys as the
application gave them), and ``lock(key, timeout=None, sleep=0.1, blocking_timeout=None)``.
Patterns are Redis globs (``*``, ``?``, ``[a-z]``, ``\\x``) over the application's keys: they
go through ``make_key`` with the cache's KEY_PREFIX and VERSION (glob-escaped), as in
django-redis, so ``keys("user:*")`` lists this prefix and version only. Turning a stored key
back into the application's key strips Django's ``prefix:version:``; with a custom
KEY_FUNCTION, give its inverse as REVERSE_KEY_FUNCTION (a dotted path or a callable, like
KEY_FUNCTION, as django-redis takes it). ``keys``/``iter_keys``/``delete_pattern`` see this
host's table only (cachekitd's scan), page by page. A lock is an entry ``add``-ed with a random
token and the lock's timeout: held by whoever added it until it is released or expires, and
released only by its owner (a compare-and-delete on the entry's version), so a holder whose
lock expired and was taken by another process cannot release the new owner's lock.

The ``a*`` methods are native (cachekit_shm.AsyncClient over the same connection): a hit is
read inline on the event loop from shared memory (a read that never waits for the daemon),
misses and writes run in a thread pool. Nothing goes through ``sync_to_async``.

Extensions: ``set_tagged(key, value, timeout, tags=("posts/42",))`` and
``invalidate_tags("posts/42")`` (every entry tagged ``posts/42`` or below it, in O(1)), and
their async forms ``aset_tagged`` / ``ainvalidate_tags``.

What differs from Django's Redis backend, and why:

- ``clear()`` drops the entries of this cache's *namespace* (every alias configured with
  the same LOCATION and namespace, whatever its KEY_PREFIX or VERSION), not the whole daemon:
  other applications on the host keep theirs. Give unrelated sites their own namespace.
- ``incr_version`` is read-then-write on the client (a copy under the new version, then a
  delete of the old one), as in Django's other backends: two processes changing the version
  of one key at once can both copy it.
- ``close()`` keeps the connection: Django calls it at the end of every request, and one
  client per process (per LOCATION and OPTIONS) is shared by every thread and alias. A forked
  child opens its own.
- Culling options (MAX_ENTRIES, CULL_FREQUENCY) are ignored: the daemon's memory is set on
  cachekitd, and a full table evicts the oldest segment's entries (FIFO with a second
  chance), never refuses a write.

Stored value format (so ``incr_version`` keeps an entry's tags): a counter is the ASCII decimal
of an i64 (``-42``, first byte a digit or ``-``). Any other untagged value is the pickle itself
(protocol 2 or later, so its first byte is 0x80). A tagged value is ``0x01``, a u16 count,
then per tag a u16 length and its UTF-8 bytes (all little-endian), then the pickle.
"""

from __future__ import annotations

import math
import pickle
import re
import secrets
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    BaseCache,
    default_key_func,
    get_key_func,
)
from django.core.exceptions import ImproperlyConfigured

from . import AsyncClient, Client
from ._django_outage import ignore_outages
from ._native import OK as _OK
from ._native import lib as _lib
from ._native import make_error
from .client import _tag_list, _ttl_ms, tag_path
from .errors import CachekitError, InvalidArgumentError, TooLargeError

__all__ = ["CachekitCache", "Lock", "LockError", "LockNotOwnedError"]

DEFAULT_NAMESPACE = "django"

_TAGGED = 0x01
_PICKLE = 0x80  # PROTO, the first opcode of every pickle of protocol 2 or later
_U16 = struct.Struct("<H")
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1

# A compare-and-set incr (of a pickled value) retries while other writers change the key
# between its read and its write. Each lost round means another write of the key succeeded,
# so this bound is only reached by a key rewritten a thousand times during one incr, or by a
# version the daemon could not name (0: a value answered from Redis while its fill raced).
_CAS_ATTEMPTS = 1000

# The most entries cachekitd answers per scan page: a larger django-redis itersize is capped.
_MAX_PAGE = 1000

# A glob's special characters (Redis KEYS/SCAN MATCH syntax), escaped with a backslash when a
# KEY_PREFIX or VERSION goes into a pattern, so they match themselves.
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")

# The encryption OPTIONS, and the Client argument each one sets.
_ENCRYPTION_OPTIONS = {
    "ENCRYPTION_KEY": "encryption_key",
    "PREVIOUS_KEYS": "previous_keys",
    "TENANT": "tenant",
    "HASH_KEYS": "hash_keys",
    "REQUIRE_ENCRYPTION": "require_encryption",
    "ENCRYPTION_MEMO_BYTES": "encryption_memo_bytes",
}
# OPTIONS keys this backend reads; anything else is a configuration mistake worth saying so.
_OPTION_KEYS = frozenset(
    {"namespace", "connect_timeout", "request_timeout", "redis_url", "pickle_protocol", "IGNORE_EXCEPTIONS"}
    | set(_ENCRYPTION_OPTIONS)
)
# Django's own cull options are accepted and ignored (see the module docstring).
_IGNORED_OPTION_KEYS = frozenset({"MAX_ENTRIES", "CULL_FREQUENCY"})


# --- One client per process per configuration ------------------------------------------------
#
# Django builds a backend object per thread (and per async context), and calls close() after
# every request. A cachekit client maps the segment and keeps a small socket pool, so one is
# opened per process and configuration and shared by every thread and alias (a Client is
# thread-safe, and reopens itself in a forked child). It is never closed: it lives as long as
# the process, like Django's own connection pools. It is opened lazily: a process whose first
# cache call comes while cachekitd is down (a worker started during a restart, a management
# command) gets misses, not an UnavailableError from every get, and attaches once it is up.

_clients_lock = threading.Lock()
_clients: dict[tuple[tuple[str, Any], ...], Client] = {}


def _hashable_key(key: Any) -> Any:
    return bytes(key) if isinstance(key, (bytearray, memoryview)) else key


def _shared_client(config: tuple[tuple[str, Any], ...]) -> Client:
    client = _clients.get(config)
    if client is None:
        with _clients_lock:
            client = _clients.get(config)
            if client is None:
                client = _clients[config] = Client(serializer=None, lazy=True, **dict(config))
    return client


# --- Value format ------------------------------------------------------------------------------


def _tag_paths(tags: Any) -> tuple[str, ...]:
    """Tags as the client takes them (one str, or an iterable of "posts/42" or ("posts", 42)),
    as paths."""
    if isinstance(tags, str):
        tags = (tags,)
    return tuple(tag_path(t) for t in tags)


def _encode_tags(tags: Sequence[str]) -> bytes:
    parts = [bytes((_TAGGED,)), _U16.pack(len(tags))]
    for tag in tags:
        raw = tag.encode("utf-8")
        if len(raw) > 0xFFFF:
            raise TooLargeError(f"tag of {len(raw)} bytes is too long: {tag[:40]!r}...")
        parts.append(_U16.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def _is_counter(value: Any) -> bool:
    """Whether `value` is stored as a counter: an exact int (not a bool) that fits an i64."""
    return type(value) is int and _I64_MIN <= value <= _I64_MAX


def _glob_escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _split(blob: bytes) -> tuple[tuple[str, ...], memoryview]:
    """(tags, pickle bytes) of a stored value."""
    view = memoryview(blob)
    if not view or view[0] != _TAGGED:
        return (), view
    (count,) = _U16.unpack_from(view, 1)
    pos = 3
    tags = []
    for _ in range(count):
        (n,) = _U16.unpack_from(view, pos)
        pos += 2
        tags.append(bytes(view[pos : pos + n]).decode("utf-8"))
        pos += n
    return tuple(tags), view[pos:]


class CachekitCache(BaseCache):
    """Django cache backend over cachekitd (see the module docstring)."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        options = dict(params.get("OPTIONS") or {})
        unknown = set(options) - _OPTION_KEYS - _IGNORED_OPTION_KEYS
        if unknown:
            raise ImproperlyConfigured(
                f"CachekitCache: unknown OPTIONS {sorted(unknown)}; "
                f"known: {sorted(_OPTION_KEYS)}"
            )
        config: dict[str, Any] = {"namespace": options.get("namespace") or DEFAULT_NAMESPACE}
        location = location or ""
        if "/" in location:
            config["socket"] = location
        elif location:
            config["instance"] = location
        for name in ("connect_timeout", "request_timeout", "redis_url"):
            if options.get(name) is not None:
                config[name] = options[name]
        for option, name in _ENCRYPTION_OPTIONS.items():
            value = options.get(option)
            if value or (option == "ENCRYPTION_MEMO_BYTES" and value is not None):
                # The config is a dict key: keys as bytes or str, a list as a tuple.
                if option == "PREVIOUS_KEYS":
                    keys = [value] if isinstance(value, (str, bytes, bytearray)) else value
                    value = tuple(_hashable_key(k) for k in keys)
                elif option == "ENCRYPTION_KEY":
                    value = _hashable_key(value)
                config[name] = value
        self._config = tuple(sorted(config.items()))
        self._async: AsyncClient | None = None
        reverse = params.get("REVERSE_KEY_FUNCTION")
        self._reverse_key_func = None if reverse is None else get_key_func(reverse)
        protocol = options.get("pickle_protocol")
        self._protocol = pickle.HIGHEST_PROTOCOL if protocol is None else int(protocol)
        if not 2 <= self._protocol <= pickle.HIGHEST_PROTOCOL:
            raise ImproperlyConfigured(
                f"CachekitCache: pickle_protocol must be 2 to {pickle.HIGHEST_PROTOCOL}, "
                f"got {protocol!r}"
            )
        if options.get("IGNORE_EXCEPTIONS"):
            ignore_outages(self)

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def _client(self) -> Client:
        return _shared_client(self._config)

    @property
    def _aclient(self) -> AsyncClient:
        # An AsyncClient over the shared Client: no connection or state of its own, so one
        # serves every thread and loop.
        client = self._client
        aclient = self._async
        if aclient is None or aclient.sync is not client:
            aclient = self._async = AsyncClient.from_client(client)
        return aclient

    def _key(self, key: Any, version: int | None) -> bytes:
        made = self.make_and_validate_key(key, version=version)
        return made if isinstance(made, bytes) else made.encode("utf-8")

    def get_backend_timeout(self, timeout: Any = DEFAULT_TIMEOUT) -> float | None:
        """Seconds to live: None forever, 0 for "expired now" (never stored)."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        return max(0.0, float(timeout))

    def _dumps(self, value: Any, tags: Sequence[str] = ()) -> bytes:
        if not tags and _is_counter(value):
            return b"%d" % value
        # An unpicklable value raises pickle's own error (Django's contract).
        data = pickle.dumps(value, self._protocol)
        return _encode_tags(tags) + data if tags else data

    @staticmethod
    def _decode(blob: Any) -> tuple[tuple[str, ...], Any]:
        """(tags, value) of a stored value (see "Stored value format")."""
        if type(blob) is int:  # a counter the client decoded itself
            return (), blob
        view = memoryview(blob)
        if view and view[0] == _PICKLE:
            return (), pickle.loads(view)
        if view and view[0] == _TAGGED:
            tags, data = _split(blob)
            return tags, pickle.loads(data)
        try:
            return (), int(bytes(view))
        except ValueError:
            return (), pickle.loads(view)  # not ours: pickle's own error says what it is

    @classmethod
    def _loads(cls, blob: Any) -> Any:
        return cls._decode(blob)[1]

    @staticmethod
    def _remaining(info: Any) -> float | None:
        """Seconds left to live of a hit (None: forever; <= 0: expired since)."""
        if not info.expires_ms:
            return None
        return (info.expires_ms - time.time() * 1000.0) / 1000.0

    # -- the BaseCache API ---------------------------------------------------------------------

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        k = self._key(key, version)
        blob = self._dumps(value)
        ttl = self.get_backend_timeout(timeout)
        if ttl == 0:  # stores nothing: says whether it would have
            return self._client.get_raw(k) is None
        return self._client.add(k, blob, ttl=ttl)

    def get_or_set(self, key, default, timeout=DEFAULT_TIMEOUT, version=None):
        ttl = self.get_backend_timeout(timeout)
        if not callable(default) or ttl == 0:
            return super().get_or_set(key, default, timeout=timeout, version=version)
        blob = self._client.query(self._key(key, version), lambda: self._dumps(default()), ttl=ttl)
        return self._loads(blob)

    def get(self, key, default=None, version=None):
        blob = self._client.get_raw(self._key(key, version))
        return default if blob is None else self._loads(blob)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        self._write(self._key(key, version), self._dumps(value), self.get_backend_timeout(timeout))

    def set_tagged(self, key, value, timeout=DEFAULT_TIMEOUT, tags: Iterable[Any] = (), version=None):
        """``set`` with tags (paths like ``"posts/42"`` or tuples like ``("posts", 42)``):
        ``invalidate_tags(t)`` drops the entry for ``t`` equal to one of its tags or above one
        (``"posts"`` covers ``"posts/42"``)."""
        tags = _tag_paths(tags)
        k = self._key(key, version)
        self._write(k, self._dumps(value, tags), self.get_backend_timeout(timeout), tags)

    def invalidate_tags(self, *tags: str, exact: bool = False) -> None:
        """Drop every entry of this namespace tagged with one of ``tags`` or below one
        (only exactly these with ``exact=True``). O(1) per tag, every process at once."""
        if tags:
            self._client.invalidate(*tags, exact=exact)

    def _write(self, k: bytes, blob: bytes, ttl: float | None, tags: Sequence[str] = ()) -> None:
        if ttl == 0:
            self._client.delete(k)
            return
        try:
            self._client.set_raw(k, blob, ttl=ttl, tags=tags)
        except (TooLargeError, InvalidArgumentError):
            # Like Django's memcached backend: never leave an older value readable after a
            # write of this key was refused.
            try:
                self._client.delete(k)
            except CachekitError:
                pass  # the key itself is refused: there is no older value
            raise

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        k = self._key(key, version)
        ttl = self.get_backend_timeout(timeout)
        if ttl == 0:
            return self._client.delete(k)
        return self._client.touch(k, ttl)

    def delete(self, key, version=None):
        return bool(self._client.delete(self._key(key, version)))

    def get_many(self, keys, version=None):
        key_map = {self._key(key, version): key for key in keys}
        if not key_map:
            return {}
        hits = self._client.get_many(list(key_map))
        return {key_map[k]: self._loads(blob) for k, blob in hits.items()}

    def has_key(self, key, version=None):
        return self._client.get_raw(self._key(key, version)) is not None

    def incr(self, key, delta=1, version=None):
        k = self._key(key, version)
        if _is_counter(delta):
            try:
                value = self._client.incr(k, delta, initial=None)
            except InvalidArgumentError:
                pass  # not a counter (pickled, tagged) or past 64 bits: compare-and-set below
            else:
                if value is None:
                    raise ValueError("Key '%s' not found" % key)
                return value
        for _ in range(_CAS_ATTEMPTS):
            hit = self._client.get_raw_with_info(k)
            new_value, blob, ttl, tags, version_read = self._incremented(key, hit, delta)
            if self._client.cas(k, blob, version_read, ttl=ttl, tags=tags):
                return new_value
        raise self._cas_exhausted(key)

    def _incremented(self, key: Any, hit: Any, delta: Any) -> tuple[Any, bytes, float | None, tuple[str, ...], int]:
        """For a compare-and-set incr: (new value, its stored form, TTL left, tags, version
        read) from a read of the key. ValueError when it is missing or expired; what
        ``value + delta`` raises for a value that is not a number."""
        remaining = None if hit is None else self._remaining(hit[1])
        if hit is None or (remaining is not None and remaining <= 0):
            raise ValueError("Key '%s' not found" % key)
        blob, info = hit
        tags, value = self._decode(blob)
        new_value = value + delta
        return new_value, self._dumps(new_value, tags), remaining, tags, info.version

    @staticmethod
    def _cas_exhausted(key: Any) -> CachekitError:
        return CachekitError(
            f"incr of {key!r} did not take: the key changed between its read and its write "
            f"{_CAS_ATTEMPTS} times in a row (other processes rewrite it constantly, or the "
            f"daemon could not name its version); retry, or keep counters as ints set "
            f"without tags (one atomic request each)"
        )

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        ttl = self.get_backend_timeout(timeout)
        items = [(key, self._key(key, version), self._dumps(value)) for key, value in data.items()]
        return _store_many(self._client, items, ttl)

    def delete_many(self, keys, version=None):
        self._client.delete_many([self._key(key, version) for key in keys])

    def clear(self):
        self._client.clear()
        return True

    def incr_version(self, key, delta=1, version=None):
        if version is None:
            version = self.version
        old = self._key(key, version)
        hit = self._client.get_raw_with_info(old)
        remaining = None if hit is None else self._remaining(hit[1])
        if hit is None or (remaining is not None and remaining <= 0):
            raise ValueError("Key '%s' not found" % key)
        blob, _info = hit
        new = self._key(key, version + delta)
        self._client.set_raw(new, blob, ttl=remaining, tags=_split(blob)[0])
        self._client.delete(old)
        return version + delta

    def close(self, **kwargs):
        """Keeps the shared connection (Django calls this after every request)."""

    # -- the django-redis extras -----------------------------------------------------------------

    def ttl(self, key, version=None) -> int | None:
        """Whole seconds `key` has left (rounded as Redis TTL rounds them); None when it never
        expires; 0 when it is missing or expired (django-redis's ``ttl``)."""
        left = self._client.ttl(self._key(key, version))
        if left is None:
            return 0
        if math.isinf(left):
            return None
        return max(0, int(left + 0.5))

    def pttl(self, key, version=None) -> int | None:
        """``ttl`` in milliseconds (django-redis's ``pttl``)."""
        left = self._client.ttl(self._key(key, version))
        if left is None:
            return 0
        if math.isinf(left):
            return None
        return max(0, int(left * 1000.0 + 0.5))

    def expire(self, key, timeout, version=None) -> bool:
        """Gives an existing `key` a new timeout (Django's: None = never expires, zero or
        negative deletes it). False when it is missing. The value and its tags stay."""
        return self.touch(key, timeout, version=version)

    def persist(self, key, version=None) -> bool:
        """Removes the expiry of `key` (it stays until deleted or evicted). False when it is
        missing; True when it exists, whether or not it had an expiry."""
        return self._client.persist(self._key(key, version))

    def _pattern(self, pattern: str, version: int | None, prefix: str | None) -> str:
        """`pattern` as a glob over stored keys: through ``key_func`` with this cache's
        KEY_PREFIX and VERSION glob-escaped, as django-redis's ``make_pattern``."""
        prefix = self.key_prefix if prefix is None else prefix
        version = self.version if version is None else version
        return self.key_func(pattern, _glob_escape(prefix), _glob_escape(str(version)))

    def _reverse(self, prefix: str | None, version: int | None) -> Any:
        """A function from a stored key (str) to the application's key."""
        if self._reverse_key_func is not None:
            return self._reverse_key_func
        if self.key_func is not default_key_func:
            raise ImproperlyConfigured(
                "CachekitCache: keys()/iter_keys() with a custom KEY_FUNCTION need its inverse: "
                "set REVERSE_KEY_FUNCTION (a dotted path or a callable taking the stored key "
                "and returning the application's key) next to KEY_FUNCTION in CACHES"
            )
        # Every match of the pattern starts with exactly this (prefix and version are escaped).
        made = len(default_key_func("", self.key_prefix if prefix is None else prefix,
                                    self.version if version is None else version))
        return lambda stored: stored[made:]

    def iter_keys(self, search, itersize=None, version=None, prefix=None) -> Iterator[str]:
        """The keys matching `search` (a glob over the application's keys), as the
        application gave them; page by page (``itersize`` per request, at most 1000; None:
        the daemon's default). This host's entries; each key present for the whole walk
        comes once."""
        reverse = self._reverse(prefix, version)
        pattern = self._pattern(search, version, prefix)
        page = None if itersize is None else max(1, min(int(itersize), _MAX_PAGE))
        for item in self._client.scan_iter(pattern, page_size=page):
            key = item.key
            yield reverse(key.decode("utf-8") if isinstance(key, bytes) else key)

    def keys(self, search, version=None, prefix=None) -> list[str]:
        """``list(iter_keys(search))``."""
        return list(self.iter_keys(search, version=version, prefix=prefix))

    def delete_pattern(self, pattern, version=None, prefix=None, itersize=None) -> int:
        """Deletes the entries whose keys match `pattern` (a glob over the application's keys,
        as ``keys``) and returns how many it deleted. Frees their memory. This host's
        table, and the records in Redis when cachekitd is configured with it."""
        return int(self._client.delete_pattern(self._pattern(pattern, version, prefix)))

    def lock(self, key, version=None, timeout=None, sleep=0.1, blocking_timeout=None) -> Lock:
        """A lock named `key`, shared by every process of the host (django-redis's ``lock``):
        ``with cache.lock("report", timeout=60): ...``. See `Lock`."""
        return Lock(self, key, version=version, timeout=timeout, sleep=sleep,
                    blocking_timeout=blocking_timeout)

    # -- async: the same operations on the AsyncClient -----------------------------------------

    async def aadd(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        k = self._key(key, version)
        blob = self._dumps(value)
        ttl = self.get_backend_timeout(timeout)
        client = self._aclient
        if ttl == 0:
            return await client.get_raw(k) is None
        return await client.add(k, blob, ttl=ttl)

    async def aget_or_set(self, key, default, timeout=DEFAULT_TIMEOUT, version=None):
        ttl = self.get_backend_timeout(timeout)
        if not callable(default) or ttl == 0:
            return await super().aget_or_set(key, default, timeout=timeout, version=version)

        async def compute() -> bytes:
            value = await self._aclient._compute(default)
            return self._dumps(value)

        blob = await self._aclient.query(self._key(key, version), compute, ttl=ttl)
        return self._loads(blob)

    async def aget(self, key, default=None, version=None):
        blob = await self._aclient.get_raw(self._key(key, version))
        return default if blob is None else self._loads(blob)

    async def aset(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        await self._awrite(self._key(key, version), self._dumps(value), self.get_backend_timeout(timeout))

    async def aset_tagged(self, key, value, timeout=DEFAULT_TIMEOUT, tags: Iterable[Any] = (), version=None):
        """Async ``set_tagged``."""
        tags = _tag_paths(tags)
        k = self._key(key, version)
        await self._awrite(k, self._dumps(value, tags), self.get_backend_timeout(timeout), tags)

    async def ainvalidate_tags(self, *tags: str, exact: bool = False) -> None:
        """Async ``invalidate_tags``."""
        if tags:
            await self._aclient.invalidate(*tags, exact=exact)

    async def _awrite(self, k: bytes, blob: bytes, ttl: float | None, tags: Sequence[str] = ()) -> None:
        client = self._aclient
        if ttl == 0:
            await client.delete(k)
            return
        try:
            await client.set_raw(k, blob, ttl=ttl, tags=tags)
        except (TooLargeError, InvalidArgumentError):
            try:
                await client.delete(k)
            except CachekitError:
                pass
            raise

    async def atouch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        k = self._key(key, version)
        ttl = self.get_backend_timeout(timeout)
        client = self._aclient
        if ttl == 0:
            return await client.delete(k)
        return await client.touch(k, ttl)

    async def adelete(self, key, version=None):
        return bool(await self._aclient.delete(self._key(key, version)))

    async def aget_many(self, keys, version=None):
        key_map = {self._key(key, version): key for key in keys}
        if not key_map:
            return {}
        hits = await self._aclient.get_many(list(key_map))
        return {key_map[k]: self._loads(blob) for k, blob in hits.items()}

    async def ahas_key(self, key, version=None):
        return await self._aclient.get_raw(self._key(key, version)) is not None

    async def aincr(self, key, delta=1, version=None):
        k = self._key(key, version)
        client = self._aclient
        if _is_counter(delta):
            try:
                value = await client.incr(k, delta, initial=None)
            except InvalidArgumentError:
                pass  # compare-and-set below, as in incr
            else:
                if value is None:
                    raise ValueError("Key '%s' not found" % key)
                return value
        for _ in range(_CAS_ATTEMPTS):
            hit = await client.get_with_info(k)
            new_value, blob, ttl, tags, version_read = self._incremented(key, hit, delta)
            if await client.cas(k, blob, version_read, ttl=ttl, tags=tags):
                return new_value
        raise self._cas_exhausted(key)

    async def aset_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        ttl = self.get_backend_timeout(timeout)
        items = [(key, self._key(key, version), self._dumps(value)) for key, value in data.items()]
        client = self._aclient
        return await client._run(_store_many, client._sync, items, ttl)

    async def adelete_many(self, keys, version=None):
        await self._aclient.delete_many([self._key(key, version) for key in keys])

    async def aclear(self):
        await self._aclient.clear()
        return True

    async def aincr_version(self, key, delta=1, version=None):
        if version is None:
            version = self.version
        client = self._aclient
        old = self._key(key, version)
        hit = await client.get_with_info(old)
        remaining = None if hit is None else self._remaining(hit[1])
        if hit is None or (remaining is not None and remaining <= 0):
            raise ValueError("Key '%s' not found" % key)
        blob, _info = hit
        new = self._key(key, version + delta)
        await client.set_raw(new, blob, ttl=remaining, tags=_split(blob)[0])
        await client.delete(old)
        return version + delta

    async def aclose(self, **kwargs):
        """Keeps the shared connection (see ``close``)."""


# --- Locks -------------------------------------------------------------------------------------


class LockError(Exception):
    """A lock could not be acquired (``with lock:`` past its ``blocking_timeout``) or released."""


class LockNotOwnedError(LockError):
    """``release()`` of a lock this object does not hold: never acquired, already released,
    or expired (its timeout passed) and perhaps taken by another process since."""


class Lock:
    """A lock over a CachekitCache, shared by every process of the host (and across hosts
    when cachekitd is configured with Redis): made by ``cache.lock(key, ...)``.

    ``acquire`` adds the lock's key with a random token and ``timeout`` (seconds; None: held
    until released): exactly one of the processes racing to add it succeeds, and the others
    retry every ``sleep`` seconds until ``blocking_timeout`` (None: wait for as long as it
    takes). A lock whose timeout passes is free again, so a crashed holder cannot keep it.
    ``release`` deletes the key only while it still holds this object's token, and only the
    very entry it read (a compare-and-delete on the entry's version): a holder whose lock
    expired and was taken by another process gets LockNotOwnedError, and the other keeps it.

    The same interface as redis-py's Lock for what it has: ``acquire(blocking=True,
    blocking_timeout=None) -> bool``, ``release()``, ``locked()``, ``owned()``, and ``with``
    (which raises LockError when it cannot acquire). One Lock object is one holder: share the
    name, not the object, between threads.
    """

    def __init__(self, cache: CachekitCache, name: Any, *, version: int | None = None,
                 timeout: float | None = None, sleep: float = 0.1,
                 blocking_timeout: float | None = None) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"a lock's timeout is seconds > 0 (None: until released), not {timeout!r}")
        if not sleep >= 0:
            raise ValueError(f"sleep is seconds >= 0, not {sleep!r}")
        self._cache = cache
        self.name = name
        self._key = cache._key(name, version)
        self.timeout = timeout
        self.sleep = sleep
        self.blocking_timeout = blocking_timeout
        self._token: bytes | None = None

    def acquire(self, blocking: bool = True, blocking_timeout: float | None = None) -> bool:
        """True once this object holds the lock; False when ``blocking`` is false and another
        holds it, or when ``blocking_timeout`` (default: the lock's) passed first."""
        if self._token is not None:
            raise LockError(f"lock {self.name!r} is already held by this object: release it first")
        client = self._cache._client
        token = self._cache._dumps(secrets.token_hex(16))
        if blocking_timeout is None:
            blocking_timeout = self.blocking_timeout
        deadline = None if blocking_timeout is None else time.monotonic() + blocking_timeout
        while True:
            if client.add(self._key, token, ttl=self.timeout):
                self._token = token
                return True
            if not blocking or (deadline is not None and time.monotonic() + self.sleep > deadline):
                return False
            time.sleep(self.sleep)

    def release(self) -> None:
        """Frees the lock. LockNotOwnedError when this object does not hold it (any more)."""
        token, self._token = self._token, None
        if token is None:
            raise LockNotOwnedError(f"cannot release lock {self.name!r}: it was not acquired here")
        client = self._cache._client
        hit = client.get_raw_with_info(self._key)
        # A compare-and-delete of the entry read: never another owner's lock.
        if hit is None or bytes(hit[0]) != token or not client.compare_and_delete(self._key, hit[1].version):
            raise LockNotOwnedError(
                f"cannot release lock {self.name!r}: it expired (its timeout of {self.timeout} s "
                f"passed) and is free or held by another owner now; give it a longer timeout"
            )

    def locked(self) -> bool:
        """Whether anyone holds the lock."""
        return self._cache._client.get_raw(self._key) is not None

    def owned(self) -> bool:
        """Whether this object holds the lock (acquired, not released, not expired)."""
        if self._token is None:
            return False
        blob = self._cache._client.get_raw(self._key)
        return blob is not None and bytes(blob) == self._token

    def __enter__(self) -> Lock:
        if not self.acquire():
            raise LockError(
                f"could not acquire lock {self.name!r} within {self.blocking_timeout} s: "
                f"another process holds it"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<Lock {self.name!r} timeout={self.timeout} {'held' if self._token else 'not held'}>"


_TOO_LARGE = _lib.CACHEKIT_TOO_LARGE
_INVALID_ARGUMENT = _lib.CACHEKIT_INVALID_ARGUMENT


def _store_many(client: Client, items: list[tuple[Any, bytes, bytes]], ttl: float | None) -> list[Any]:
    """``set_many``'s work on ``(key, cache key, blob)`` items: one SET_MANY request for them
    all (more than 1000 items: several). Returns the keys refused as too large, as Django's
    memcached backend does; like ``_write``, a refused key is deleted, so no older value stays
    readable. Any other failure raises, after the other items were stored."""
    if not items:
        return []
    keys = [k for _, k, _ in items]
    if ttl == 0:
        client.delete_many(keys)
        return []
    codes = client._set_many_codes([(k, blob) for _, k, blob in items], _ttl_ms(ttl), 0, _tag_list(()))
    bad = [i for i, code in enumerate(codes) if code != _OK]
    if not bad:
        return []
    other = next((i for i in bad if codes[i] != _TOO_LARGE), None)
    # The library's message is that of the first failing item: take it before another call.
    error = make_error(codes[bad[0] if other is None else other])
    refused = [keys[i] for i in bad if codes[i] in (_TOO_LARGE, _INVALID_ARGUMENT)]
    try:
        client.delete_many(refused)
    except CachekitError:
        pass  # a key itself refused: there is no older value
    if other is not None:
        raise error
    return [items[i][0] for i in bad]

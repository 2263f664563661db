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
            },
        }
    }

Semantics are Django's: ``timeout`` DEFAULT_TIMEOUT is the cache's default, None keeps the
entry until it is evicted, zero or negative expires it at once (``set`` deletes the key,
``add`` stores nothing). Keys are Django keys (``make_key``, ``validate_key`` with Django's
own warnings), encoded as UTF-8; values are pickled. Hits are read from the shared segment
with no syscall; writes go to the daemon. ``incr``/``decr`` and ``incr_version`` keep the
entry's remaining TTL and its tags (as Django's local-memory and Redis backends keep the
TTL); ``touch`` keeps its tags. A value over the daemon's limit (``--max-value-bytes``)
makes ``set`` raise ``TooLargeError`` after deleting the key (no older value stays
readable, as with Django's memcached backend); ``set_many`` returns such keys instead.
Writes while cachekitd is down raise ``UnavailableError`` (a ``ConnectionError``); gets
miss, whether the daemon went down before or after the process first used the cache (the
client connects on first use, and attaches by itself once the daemon is back). Once a
process has found the daemon gone (its socket refused, a connection closed under a request),
it no longer reads that daemon's shared memory, so a ``delete`` or ``invalidate_tags`` that
failed that way is never followed, in that process, by a read of the value it meant to
remove.

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
- ``add``, ``incr``/``decr``, ``touch`` and ``incr_version`` are read-then-write on the
  client: cachekitd has no conditional write. Two processes racing on one key can both
  ``add`` it, or lose one increment. Use them for what Django's local-memory cache is good
  for, not as a cross-process lock or exact counter.
- ``close()`` keeps the connection: Django calls it at the end of every request, and one
  client per process (per LOCATION and OPTIONS) is shared by every thread and alias. A forked
  child opens its own.
- Culling options (MAX_ENTRIES, CULL_FREQUENCY) are ignored: the daemon's memory is set on
  cachekitd, and a full table evicts the oldest segment's entries (FIFO with a second
  chance), never refuses a write.

Stored value format (so ``touch`` and ``incr`` keep an entry's tags): an untagged value is
the pickle itself (protocol 2 or later, so its first byte is 0x80). A tagged value is
``0x01``, a u16 count, then per tag a u16 length and its UTF-8 bytes (all little-endian),
then the pickle.
"""

from __future__ import annotations

import pickle
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured

from . import AsyncClient, Client
from .client import tag_path
from .errors import CachekitError, InvalidArgumentError, TooLargeError

__all__ = ["CachekitCache"]

DEFAULT_NAMESPACE = "django"

_TAGGED = 0x01
_U16 = struct.Struct("<H")

# OPTIONS keys this backend reads; anything else is a configuration mistake worth saying so.
_OPTION_KEYS = frozenset(
    {"namespace", "connect_timeout", "request_timeout", "redis_url", "pickle_protocol"}
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
        self._config = tuple(sorted(config.items()))
        self._async: AsyncClient | None = None
        protocol = options.get("pickle_protocol")
        self._protocol = pickle.HIGHEST_PROTOCOL if protocol is None else int(protocol)
        if not 2 <= self._protocol <= pickle.HIGHEST_PROTOCOL:
            raise ImproperlyConfigured(
                f"CachekitCache: pickle_protocol must be 2 to {pickle.HIGHEST_PROTOCOL}, "
                f"got {protocol!r}"
            )

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
        # An unpicklable value raises pickle's own error (Django's contract).
        data = pickle.dumps(value, self._protocol)
        return _encode_tags(tags) + data if tags else data

    @staticmethod
    def _loads(blob: bytes) -> Any:
        return pickle.loads(_split(blob)[1])

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
        if self._client.get_raw(k) is not None:
            return False
        ttl = self.get_backend_timeout(timeout)
        if ttl != 0:
            self._client.set_raw(k, blob, ttl=ttl)
        return True

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
        blob = self._client.get_raw(k)
        if blob is None:
            return False
        self._client.set_raw(k, blob, ttl=ttl, tags=_split(blob)[0])
        return True

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
        hit = self._client.get_raw_with_info(k)
        remaining = None if hit is None else self._remaining(hit[1])
        if hit is None or (remaining is not None and remaining <= 0):
            raise ValueError("Key '%s' not found" % key)
        blob, _info = hit
        tags, data = _split(blob)
        new_value = pickle.loads(data) + delta
        self._client.set_raw(k, self._dumps(new_value, tags), ttl=remaining, tags=tags)
        return new_value

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        ttl = self.get_backend_timeout(timeout)
        failed = []
        for key, value in data.items():
            k = self._key(key, version)
            blob = self._dumps(value)
            try:
                self._write(k, blob, ttl)
            except TooLargeError:
                failed.append(key)
        return failed

    def delete_many(self, keys, version=None):
        for k in [self._key(key, version) for key in keys]:
            self._client.delete(k)

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

    # -- async: the same operations on the AsyncClient -----------------------------------------

    async def aadd(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        k = self._key(key, version)
        blob = self._dumps(value)
        client = self._aclient
        if await client.get_raw(k) is not None:
            return False
        ttl = self.get_backend_timeout(timeout)
        if ttl != 0:
            await client.set_raw(k, blob, ttl=ttl)
        return True

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
        blob = await client.get_raw(k)
        if blob is None:
            return False
        await client.set_raw(k, blob, ttl=ttl, tags=_split(blob)[0])
        return True

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
        hit = await client.get_with_info(k)
        remaining = None if hit is None else self._remaining(hit[1])
        if hit is None or (remaining is not None and remaining <= 0):
            raise ValueError("Key '%s' not found" % key)
        blob, _info = hit
        tags, data = _split(blob)
        new_value = pickle.loads(data) + delta
        await client.set_raw(k, self._dumps(new_value, tags), ttl=remaining, tags=tags)
        return new_value

    async def aset_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        ttl = self.get_backend_timeout(timeout)
        failed = []
        for key, value in data.items():
            k = self._key(key, version)
            blob = self._dumps(value)
            try:
                await self._awrite(k, blob, ttl)
            except TooLargeError:
                failed.append(key)
        return failed

    async def adelete_many(self, keys, version=None):
        client = self._aclient
        for k in [self._key(key, version) for key in keys]:
            await client.delete(k)

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

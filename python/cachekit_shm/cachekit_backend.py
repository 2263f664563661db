"""cachekitd as the storage backend of the ``cachekit`` PyPI package.

``cachekit`` (the decorator library: ``@cache``, its serializers, encryption and L1) stores
its own frames through a small backend protocol: synchronous, bytes only. This module gives
it the host's shared cache, so a result computed by one process is a shared-memory hit in
every other one::

    from cachekit import cache
    from cachekit_shm.cachekit_backend import CachekitShmBackend

    backend = CachekitShmBackend(namespace="reports")   # Client keyword arguments

    @cache(backend=backend, ttl=300)
    def report(day): ...

What it implements, as cachekit 0.24 calls it (keys arrive as ``str``; ``bytes`` work too):

- ``BaseBackend``: ``get``, ``set(key, value, ttl)`` (seconds; None, 0 or negative keep the
  entry until it is evicted, as cachekit's Redis backend does), ``delete``, ``exists``,
  ``health_check() -> (bool, {"backend_type", "latency_ms", ...})``.
- ``TTLInspectableBackend``: async ``get_ttl`` / ``refresh_ttl`` (whole seconds).
- Stale-while-revalidate: ``get_with_freshness`` and ``set(..., stale_ttl=)`` map onto
  cachekitd's grace period, so ``@cache(backend=..., ttl=60, stale_ttl=30)`` serves a stale
  value from shared memory while one caller recomputes it.

Errors are cachekit's ``BackendError`` with the type its circuit breaker expects: daemon
down → TRANSIENT, too slow → TIMEOUT, refused by permissions → AUTHENTICATION, a value or key
over the daemon's limits → PERMANENT. Gets never fail because the daemon is down: they miss.

- ``KeyTrackableBackend``: ``track_key`` / ``drain_tracked``, so ``invalidate_cache()`` with
  no arguments drops every entry of the function on the whole host, whichever process wrote
  it (without them cachekit falls back to deleting the keys the calling process wrote or
  read itself, and other processes' entries stay). ``track_key(registry_id, key)``, which
  cachekit calls right after a successful ``set``, tags the entry with the function's
  registry id (the tag ``ck-fn/<registry id with "/" as "%2F">``): a compare-and-set of the
  value just written, on its version, with its remaining TTL and grace. If another write of
  the key came in between, that write's own ``track_key`` tags it. ``drain_tracked``
  invalidates that tag (every process at once, O(1)) and deletes the caller's local keys; it
  returns those local keys (cachekit evicts them from the caller's L1; other processes' L1
  copies are cachekit's, reached by its invalidation events on backends that carry them).
  Cost: a tracked write is a write, a read of the shared segment, and a second write of the
  same bytes. An entry whose tagging lost to a concurrent eviction or expiry is not tagged,
  and nothing is left to drop.

``refresh_ttl`` sets the new TTL in one request (the value and its tags stay).

- ``LockableBackend``: ``acquire_lock(key, timeout, blocking_timeout)`` is cachekitd's fill
  lease of the key (`Client.query` underneath), so cachekit's async ``@cache`` computes a
  missing value once on the whole host. The caller that gets the lease yields True and
  computes; its ``set`` of that key is the lease's fill, which hands the value to every
  waiter in every process at once (they yield True too, and cachekit's double-check read
  finds the value). A fill is not stored when the key was written, deleted or invalidated
  during the computation (no stale value outlives the write that should have removed it).
  Leaving the block without a ``set`` (the function raised) releases the lease: one waiter
  takes it over. False after ``blocking_timeout`` seconds with no value; with
  ``blocking_timeout=None`` (cachekit's stale-while-revalidate) it never waits: True for the
  one caller of the host that gets to refresh the key while its value is not fresh (False
  once a refresh has landed). ``timeout`` is the lease's lifetime:
  past it a waiter takes over and the late ``set`` is not stored. The callers of one key in
  one process wait for each other (one asks the daemon), so the default executor never fills
  up with waits. cachekit 0.24.1's *sync* ``@cache`` never calls a lock (its sync wrapper
  has no lock path), so only async functions coalesce.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from cachekit.backends.errors import BackendError, BackendErrorType

from . import Client
from .aio import _wait_future
from .lease import FillLease, QueryOptions, _Flight, lease_pool
from .errors import (
    CachekitError,
    CachekitTimeoutError,
    InvalidArgumentError,
    NotPermittedError,
    TooLargeError,
    UnavailableError,
)

__all__ = ["CachekitShmBackend"]

BACKEND_TYPE = "cachekit_shm"


def _error_type(exc: CachekitError) -> BackendErrorType:
    if isinstance(exc, UnavailableError):
        return BackendErrorType.TRANSIENT
    if isinstance(exc, CachekitTimeoutError):
        return BackendErrorType.TIMEOUT
    if isinstance(exc, NotPermittedError):
        return BackendErrorType.AUTHENTICATION
    if isinstance(exc, (TooLargeError, InvalidArgumentError)):
        return BackendErrorType.PERMANENT
    return BackendErrorType.UNKNOWN


def _backend_error(exc: CachekitError, operation: str, key: Any = None) -> BackendError:
    if isinstance(key, bytes):
        key = key.decode("utf-8", "backslashreplace")
    return BackendError(
        str(exc),
        error_type=_error_type(exc),
        original_exception=exc,
        operation=operation,
        key=key,
    )


def _key(key: str | bytes) -> bytes:
    return key if isinstance(key, bytes) else key.encode("utf-8")


def _registry_tag(registry_id: str) -> str:
    """The tag of one cachekit function's entries. Tag paths split on "/" (``invalidate`` of
    ``a`` covers ``a/b``), so a "/" inside the registry id (from a namespace) is escaped to
    keep one function's tag from sitting below another's; drains invalidate it exactly."""
    return "ck-fn/" + registry_id.replace("%", "%25").replace("/", "%2F")


def _ttl(ttl: float | None) -> float | None:
    """cachekit's TTL convention: None, 0 or negative = no expiry."""
    return None if ttl is None or ttl <= 0 else ttl


class CachekitShmBackend:
    """A ``cachekit`` backend storing in cachekitd (see the module docstring).

    ``client`` is a :class:`cachekit_shm.Client` opened with ``serializer=None`` (cachekit
    hands over finished bytes); without one, a client is opened from ``client_kwargs``
    (``namespace``, ``instance``, ``socket``, timeouts, ``redis_url``...) and closed by
    :meth:`close`. Unless ``lazy`` is given, that client attaches at once when cachekitd is up
    (so the first get is already a shared-memory read) and opens lazily when it is not: a
    process that builds the backend while the daemon is down gets misses from ``get`` (and the
    backend's errors from writes) instead of an exception at start-up, and attaches once the
    daemon is up. ``lazy=False`` fails fast instead. A given client stays the caller's to close.
    """

    def __init__(self, client: Client | None = None, **client_kwargs: Any) -> None:
        if client is None:
            if client_kwargs.setdefault("serializer", None) is not None:
                raise ValueError(
                    "CachekitShmBackend stores cachekit's bytes as they are: "
                    "leave serializer unset (or None)"
                )
            if "lazy" in client_kwargs:
                self._client = Client(**client_kwargs)
            else:
                try:
                    self._client = Client(**client_kwargs)
                except UnavailableError:
                    self._client = Client(lazy=True, **client_kwargs)
            self._owned = True
        else:
            if client_kwargs:
                raise TypeError("pass either a client or client keyword arguments, not both")
            self._client = client
            self._owned = False
        # Fill leases this process holds, by key (the daemon grants one per key per host), and
        # the in-process waits for them.
        self._leases: dict[bytes, FillLease] = {}
        self._flights: dict[bytes, _Flight] = {}
        self._leases_lock = threading.Lock()

    @property
    def client(self) -> Client:
        """The cachekit_shm client underneath (stats, tags, namespaces)."""
        return self._client

    # -- BaseBackend -----------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        try:
            return self._client.get_raw(_key(key))
        except CachekitError as exc:
            raise _backend_error(exc, "get", key) from exc

    def set(
        self, key: str, value: bytes, ttl: int | None = None, stale_ttl: int | None = None
    ) -> None:
        grace = stale_ttl if stale_ttl and stale_ttl > 0 else 0
        k = _key(key)
        with self._leases_lock:
            lease = self._leases.pop(k, None)
        try:
            if lease is not None:  # the value of this process's lease: the waiters get it
                lease.fill(bytes(value), QueryOptions(_ttl(ttl), grace, (), 1, 1, "compute", "host"))
                return
            self._client.set_raw(k, bytes(value), ttl=_ttl(ttl), grace=grace)
        except CachekitError as exc:
            raise _backend_error(exc, "set", key) from exc

    def delete(self, key: str) -> bool:
        try:
            return bool(self._client.delete(_key(key)))
        except CachekitError as exc:
            raise _backend_error(exc, "delete", key) from exc

    def exists(self, key: str) -> bool:
        return self.get(key) is not None

    def health_check(self) -> tuple[bool, dict[str, Any]]:
        """``(healthy, details)``: one round trip to cachekitd. Details always carry
        ``backend_type`` and ``latency_ms`` (-1 when the daemon did not answer)."""
        start = time.perf_counter()
        try:
            pong = self._client.ping()
        except CachekitError as exc:
            return False, {
                "backend_type": BACKEND_TYPE,
                "latency_ms": -1,
                "namespace": self._client.namespace,
                "error": str(exc),
                "error_type": type(exc).__name__,
            }
        return True, {
            "backend_type": BACKEND_TYPE,
            "latency_ms": round((time.perf_counter() - start) * 1000.0, 3),
            "namespace": self._client.namespace,
            "daemon_epoch": pong.epoch,
            "rtt_us": pong.rtt_us,
        }

    # -- stale-while-revalidate (cachekit's SWRCapableBackend) --------------------------------

    def get_with_freshness(self, key: str) -> tuple[bytes, bool, int | None] | None:
        """``(value, is_stale, fresh_for)``: ``fresh_for`` is the whole seconds the entry
        stays fresh (None: no expiry; 0 when stale)."""
        try:
            hit = self._client.get_with_info(_key(key))
        except CachekitError as exc:
            raise _backend_error(exc, "get", key) from exc
        if hit is None:
            return None
        value, info = hit
        if not info.expires_ms:
            return value, bool(info.stale), None
        left = (info.expires_ms - time.time() * 1000.0) / 1000.0
        return value, bool(info.stale), max(0, int(left))

    # -- TTLInspectableBackend --------------------------------------------------------------

    def _get_ttl(self, key: str) -> int | None:
        try:
            hit = self._client.get_with_info(_key(key))
        except CachekitError as exc:
            raise _backend_error(exc, "get_ttl", key) from exc
        if hit is None or not hit[1].expires_ms or hit[1].stale:
            return None
        left = (hit[1].expires_ms - time.time() * 1000.0) / 1000.0
        # Whole seconds as Redis TTL reports them; an entry about to expire reads 0.
        return max(0, int(math.floor(left))) if left > 0 else None

    def _refresh_ttl(self, key: str, ttl: int) -> bool:
        try:
            return bool(self._client.touch(_key(key), _ttl(ttl)))
        except CachekitError as exc:
            raise _backend_error(exc, "refresh_ttl", key) from exc

    async def get_ttl(self, key: str) -> int | None:
        """Remaining whole seconds to live; None when missing or without expiry."""
        return await asyncio.to_thread(self._get_ttl, key)

    async def refresh_ttl(self, key: str, ttl: int) -> bool:
        """Give an existing entry ``ttl`` seconds from now (0: no expiry). False if missing."""
        return await asyncio.to_thread(self._refresh_ttl, key, ttl)

    # -- KeyTrackableBackend: host-wide whole-function invalidation ----------------------------

    def track_key(self, registry_id: str, key: str) -> None:
        """Tag the entry just written under `key` with the function's registry id (see the
        module docstring). Raises BackendError when the daemon cannot be asked (cachekit logs
        it, and its next drain in this process still deletes the key it remembers)."""
        k = _key(key)
        try:
            hit = self._client.get_raw_with_info(k)
            if hit is None:
                return  # evicted, expired or deleted already: nothing to drop later
            value, info = hit
            now_ms = time.time() * 1000.0
            ttl = None
            grace = 0.0
            if info.expires_ms:
                ttl = (info.expires_ms - now_ms) / 1000.0
                if ttl <= 0:
                    return  # expired (stale): no longer present, so not to be rewritten
                if info.grace_until_ms > info.expires_ms:
                    grace = (info.grace_until_ms - info.expires_ms) / 1000.0
            # False: the key was written again in between, and that write's track_key tags it.
            self._client.cas(k, bytes(value), info.version, ttl=ttl, grace=grace,
                             tags=(_registry_tag(registry_id),))
        except CachekitError as exc:
            raise _backend_error(exc, "track_key", key) from exc

    def drain_tracked(self, registry_id: str, local_keys: Iterable[str]) -> set[str]:
        """Drop every entry tagged with the function's registry id (on the whole host, at
        once), then delete `local_keys`. Returns `local_keys` (for the caller's L1)."""
        keys = set(local_keys)
        try:
            self._client.invalidate(_registry_tag(registry_id), exact=True)
            for key in keys:
                self._client.delete(_key(key))
        except CachekitError as exc:
            raise _backend_error(exc, "drain_tracked", registry_id) from exc
        return keys

    # -- LockableBackend: cachekitd's fill lease ---------------------------------------------

    @contextlib.asynccontextmanager
    async def acquire_lock(
        self, key: str, timeout: float, blocking_timeout: float | None = None
    ) -> AsyncIterator[bool]:
        """The key's fill lease as cachekit's lock (see the module docstring): yields True
        to compute (or when another holder's value came), False when none came in time."""
        k = _key(key)
        loop = asyncio.get_running_loop()
        pool = lease_pool()
        try:
            o = QueryOptions(None, 0, (), blocking_timeout or 1, max(timeout, 0.001), "compute", "host")
        except CachekitError as exc:
            raise _backend_error(exc, "acquire_lock", key) from exc
        if blocking_timeout is None:
            try:
                lease = await loop.run_in_executor(pool, self._client._begin_refresh, k, o)
            except CachekitError as exc:
                raise _backend_error(exc, "acquire_lock", key) from exc
            if lease is None:
                yield False
                return
            with self._leases_lock:
                self._leases[k] = lease
            try:
                yield True
            finally:
                await self._end_lease(k, lease)
            return

        deadline = time.monotonic() + max(0.0, blocking_timeout)
        while True:
            with self._leases_lock:
                flight = self._flights.get(k)
                leader = flight is None
                if leader:
                    flight = self._flights[k] = _Flight()
            if not leader:
                got = await _wait_future(flight.fut, deadline - time.monotonic())
                if got is None:
                    yield False
                    return
                if got[0]:  # the value is there: cachekit's double-check reads it
                    yield True
                    return
                if time.monotonic() >= deadline:
                    yield False
                    return
                continue  # the holder's computation failed: compete again
            filled = False
            try:
                try:
                    what, got = await loop.run_in_executor(
                        pool, self._client._acquire, k, o, max(0.001, deadline - time.monotonic()))
                except CachekitError as exc:
                    raise _backend_error(exc, "acquire_lock", key) from exc
                if what == "down":
                    raise _backend_error(got, "acquire_lock", key) from got
                if what == "busy":
                    yield False
                    return
                if what == "hit":
                    filled = True
                    yield True
                    return
                lease = got
                if self._client._fresh_local(k) is not None:  # a fill landed just before the grant
                    await loop.run_in_executor(pool, lease.release)
                    filled = True
                    yield True
                    return
                with self._leases_lock:
                    self._leases[k] = lease
                try:
                    yield True
                finally:
                    filled = await self._end_lease(k, lease)
                return
            finally:
                with self._leases_lock:
                    if self._flights.get(k) is flight:
                        del self._flights[k]
                flight.fut.set_result((filled, None))

    async def _end_lease(self, k: bytes, lease: FillLease) -> bool:
        """After the lock's block: True if ``set`` filled the lease, else it is released."""
        with self._leases_lock:
            held = self._leases.get(k) is lease
            if held:
                del self._leases[k]
        if not held:
            return True
        await asyncio.get_running_loop().run_in_executor(lease_pool(), lease.release)
        return False

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the client if this backend opened it."""
        if self._owned:
            self._client.close()

    def __enter__(self) -> CachekitShmBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CachekitShmBackend({self._client!r})"

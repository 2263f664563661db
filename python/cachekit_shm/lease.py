"""Compute once per host: fill leases and `Client.query` (issue 13; the C ABI's
``cachekit_lease_*``).

`query(key, fn, ...)` has t87s semantics:

1. a fresh hit is returned from the shared segment (no syscall);
2. a stale hit (past its TTL, within grace) is returned at once, and the key is refreshed in
   the background (a thread of the process's pool; for `AsyncClient`, a task): that refresh
   asks the daemon for the key's *refresh lease*, which exactly one caller of the host gets,
   and runs `fn` only if the value is still stale once it holds it;
3. on a miss exactly one caller of the host runs `fn`: it holds the key's *fill lease*,
   granted by cachekitd; every other caller, in any process, waits for that value (up to
   ``wait_timeout``; then it computes itself, or raises, as ``on_timeout`` says). Inside one
   process the callers of one key first wait for each other (one of them asks the daemon), so
   a process holds one daemon connection per key in flight, not one per thread or task; they
   get the very object their process's caller got (computed or loaded), as with t87s's own
   in-process coalescing, not a copy each.

A computation that raises releases the lease: the error goes to its caller only; the waiters
go on waiting (one of them, in any process, takes the lease over and computes). A holder that
dies (kill -9) releases its lease at once (the daemon sees its connection close). A value
computed while the key was written or deleted, or one of its tags invalidated, is returned to
its caller but not stored as fresh: that is what closes the delete-on-write race of the
get → miss → read the database → set pattern.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import os
import threading
import time
from typing import Any, Callable, Dict, Optional, Set, Tuple

from ._native import BUFFER_TOO_SMALL, OK, ffi, lib, make_error
from .errors import CachekitError, CachekitTimeoutError, InvalidArgumentError, SerializationError, UnavailableError

__all__ = ["QueryMixin", "QueryOptions", "FillLease"]

log = logging.getLogger("cachekit_shm")

GRANTED = lib.CACHEKIT_LEASE_GRANTED
BUSY = lib.CACHEKIT_LEASE_BUSY
_NO_DAEMON = (lib.CACHEKIT_UNAVAILABLE, lib.CACHEKIT_TIMEOUT)
_ON_TIMEOUT = ("compute", "error")
_NONE: Any = object()
_SCOPES = ("host", "global")

DEFAULT_WAIT_TIMEOUT = 10.0
"""Seconds a caller waits for another's computation (the C library's default)."""
DEFAULT_LEASE_TIMEOUT = 30.0
"""Seconds a holder may compute before its lease passes to a waiter (the C library's
default; the daemon caps it at 10 minutes)."""


def _seconds(value: Any, what: str) -> float:
    from datetime import timedelta

    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} is seconds (int, float or timedelta), not {type(value).__name__}")
    if not value > 0 or math.isinf(value):
        raise InvalidArgumentError(f"{what} must be > 0 seconds, not {value!r}")
    return float(value)


class QueryOptions:
    """The options of one query, checked once: what to store, how to wait, how to hold."""

    __slots__ = ("ttl", "grace", "tags", "ttl_ms", "grace_ms", "wait_s", "lease_ms", "flags", "on_timeout")

    def __init__(self, ttl: Any, grace: Any, tags: Any, wait_timeout: Any, lease_timeout: Any,
                 on_timeout: str, scope: str) -> None:
        from .client import _ms, _tag_list, _ttl_ms

        self.ttl, self.grace, self.tags = ttl, grace, tags
        self.ttl_ms = _ttl_ms(ttl)
        self.grace_ms = _ms(grace, "grace", zero=True)
        for path in _tag_list(tags)[2]:  # a malformed tag fails here, before anything is computed
            text = ffi.string(path).decode()
            if "" in text.split("/"):
                raise InvalidArgumentError(
                    f"tag {text!r} has an empty segment; a tag is segments joined by '/', like 'posts/123'")
        self.wait_s = _seconds(wait_timeout, "wait_timeout")
        self.lease_ms = max(1, math.ceil(_seconds(lease_timeout, "lease_timeout") * 1000))
        if on_timeout not in _ON_TIMEOUT:
            raise InvalidArgumentError(f"on_timeout is 'compute' or 'error', not {on_timeout!r}")
        if scope not in _SCOPES:
            raise InvalidArgumentError(f"scope is 'host' or 'global', not {scope!r}")
        self.on_timeout = on_timeout
        self.flags = lib.CACHEKIT_LEASE_GLOBAL if scope == "global" else 0

    def lease_options(self, wait_s: float) -> Any:
        o = ffi.new("cachekit_lease_options *")
        o.struct_size = ffi.sizeof("cachekit_lease_options")
        o.flags = self.flags
        o.wait_timeout_ms = max(1, math.ceil(wait_s * 1000))  # 0 would mean "the default"
        o.lease_timeout_ms = self.lease_ms
        return o


class FillLease:
    """A key's fill lease, held by this process: `fill` it with the computed bytes or
    `release` it. Dropped without either, it is released (the finalizer)."""

    __slots__ = ("_ptr",)

    def __init__(self, raw: Any) -> None:
        self._ptr: Any = ffi.gc(raw, lib.cachekit_lease_release)

    def _take(self) -> Any:
        ptr, self._ptr = self._ptr, None
        if ptr is None:
            raise CachekitError("this lease was filled or released already")
        ffi.gc(ptr, None)  # the call below consumes it
        return ptr

    def fill(self, data: bytes, o: QueryOptions) -> bool:
        """Stores `data` with the query's TTL, grace and tags and ends the lease: True when
        stored as fresh (False: the key was written, deleted or invalidated meanwhile, or the
        lease had passed on). Raises as `Client.set`."""
        from .client import _tag_list

        ctags, ntags, _keep = _tag_list(o.tags)
        so = ffi.new("cachekit_set_options *")
        so.struct_size = ffi.sizeof("cachekit_set_options")
        so.ttl_ms = o.ttl_ms
        so.grace_ms = o.grace_ms
        so.tags, so.tag_count = ctags, ntags
        stored = ffi.new("bool *")
        if not isinstance(data, bytes):
            # Converted before the lease is taken out of its owner: a bad value must not
            # leave the lease (and its connection) owned by nobody.
            data = bytes(data)
        rc = lib.cachekit_lease_fill(self._take(), data, len(data), so, stored)
        if rc != OK:
            raise make_error(rc)
        return bool(stored[0])

    def release(self) -> None:
        """Ends the lease without a value: one waiter takes it over. Never fails."""
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            ffi.gc(ptr, None)
            lib.cachekit_lease_release(ptr)


class _Flight:
    """One key being fetched by one caller of this process, which the others wait for.
    `fut` ends with ``(True, value)`` (the value) or ``(False, None)`` (no value for the
    waiters: they try again)."""

    __slots__ = ("fut",)

    def __init__(self) -> None:
        self.fut: "concurrent.futures.Future[Tuple[bool, Any]]" = concurrent.futures.Future()


class _State:
    """A client's in-process coordination, per pid (a forked child starts empty: the threads
    that would end the parent's flights are not there)."""

    __slots__ = ("pid", "lock", "flights", "refreshing")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.flights: Dict[bytes, _Flight] = {}
        self.refreshing: Set[bytes] = set()


_lease_pool_lock = threading.Lock()
_lease_pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
LEASE_POOL_THREADS = 64
"""Threads that wait for leases for `AsyncClient.query` (one per key in flight in the
process; the callers of one key share one)."""


def lease_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The process's pool for lease waits (apart from the pool of plain requests, which a
    long wait must not starve)."""
    global _lease_pool
    p = _lease_pool
    if p is None:
        with _lease_pool_lock:
            p = _lease_pool
            if p is None:
                p = _lease_pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=LEASE_POOL_THREADS, thread_name_prefix="cachekit-lease")
    return p


def _after_fork_in_child() -> None:
    global _lease_pool, _lease_pool_lock
    _lease_pool_lock = threading.Lock()
    _lease_pool = None


os.register_at_fork(after_in_child=_after_fork_in_child)


class QueryMixin:
    """`query` and the lease calls, mixed into `Client`."""

    # ---- the two-step lease API ---------------------------------------------------------------

    def _state(self) -> _State:
        s = self.__dict__.get("_query_state")
        if s is None or s.pid != os.getpid():
            s = self.__dict__["_query_state"] = _State()
        return s

    def _acquire(self, k: bytes, o: QueryOptions, wait_s: float) -> Tuple[str, Any]:
        """Asks the daemon for `k`'s fill lease, waiting up to `wait_s`: ``("hit", (raw,
        Info))``, ``("granted", FillLease)``, ``("busy", None)`` or ``("down", error)`` (no
        daemon to coordinate with). Raises for a refused key or options."""
        from .client import _info

        lo = o.lease_options(wait_s)
        out = ffi.new("cachekit_lease **")
        cap = 16 << 10
        while True:
            buf = ffi.new("uint8_t[]", cap)
            lenp = ffi.new("size_t *")
            info = ffi.new("cachekit_value_info *")
            rc = lib.cachekit_lease_acquire(self._handle(), k, len(k), lo, out, buf, cap, lenp, info)
            if rc == OK:
                return "hit", (ffi.buffer(buf, lenp[0])[:], _info(info))
            if rc == GRANTED:
                return "granted", FillLease(out[0])
            if rc == BUSY:
                return "busy", None
            if rc == BUFFER_TOO_SMALL:
                cap = lenp[0]
                continue
            if rc in _NO_DAEMON:
                return "down", make_error(rc)
            raise make_error(rc)

    def _refresh_lease(self, k: bytes, o: QueryOptions) -> Optional[FillLease]:
        """The refresh lease of `k` (never waits), or None when someone else refreshes it or
        the daemon cannot be reached."""
        out = ffi.new("cachekit_lease **")
        rc = lib.cachekit_refresh_lease(self._handle(), k, len(k), o.lease_options(1.0), out)
        if rc == GRANTED:
            return FillLease(out[0])
        if rc == BUSY or rc in _NO_DAEMON:
            return None
        raise make_error(rc)

    def _fresh_local(self, k: bytes) -> Optional[Tuple[bytes, Any]]:
        """`k`'s value in the segment if it is there and fresh."""
        hit = self._local_raw_with_info(k)  # type: ignore[attr-defined]
        if hit is not None and not hit[1].stale:
            return hit
        return None

    def _fill(self, lease: FillLease, value: Any, o: QueryOptions) -> None:
        """Serializes and fills `value` (a failure to store it is logged: the caller has its
        value). A value that cannot be serialized releases the lease and raises."""
        try:
            data = self._dumps(value)  # type: ignore[attr-defined]
        except BaseException:
            lease.release()
            raise
        try:
            if not lease.fill(data, o):
                log.debug("cachekit: a computed value was not stored as fresh (written or invalidated meanwhile)")
        except CachekitError as e:
            log.warning("cachekit: not caching a computed value: %s", e)

    def _store_unleased(self, k: bytes, value: Any, o: QueryOptions) -> None:
        """A plain set, for a value computed after a wait timed out."""
        try:
            self.set(k, value, ttl=o.ttl, grace=o.grace, tags=o.tags)  # type: ignore[attr-defined]
        except (UnavailableError, CachekitTimeoutError) as e:
            log.warning("cachekit: not caching a computed value: %s", e)

    # ---- query -----------------------------------------------------------------------------------

    def query(self, key: Any, fn: Callable[[], Any], tags: Any = (), ttl: Any = None, grace: Any = 0, *,
              wait_timeout: Any = DEFAULT_WAIT_TIMEOUT, lease_timeout: Any = DEFAULT_LEASE_TIMEOUT,
              on_timeout: str = "compute", scope: str = "host") -> Any:
        """The value of `key`; on a miss ``fn()`` computes it, once per host at a time (see
        the module's doc). ``tags``, ``ttl``, ``grace``: as `set`, for the value stored.

        ``wait_timeout``: seconds to wait for another caller's computation; then compute it
        anyway (``on_timeout="compute"``, the default) or raise `CachekitTimeoutError`
        (``"error"``). ``lease_timeout``: seconds this caller may compute before its lease
        passes to a waiter (its value is then not stored). ``scope="global"``: also take the
        lease in Redis, so one host of all those sharing the daemon's Redis computes (the
        daemon falls back to the host's lease when Redis is unreachable).

        The exception of ``fn`` reaches its caller only. With the daemon down, ``fn`` runs
        and nothing is cached.
        """
        if type(key) is str:
            k = key.encode()
        elif type(key) is bytes:
            k = key
        else:
            from .client import _key

            k = _key(key)
        return self._query(k, fn, lambda: QueryOptions(ttl, grace, tags, wait_timeout, lease_timeout,
                                                                on_timeout, scope))

    def _query(self, k: bytes, fn: Callable[[], Any], make_options: Callable[[], QueryOptions]) -> Any:
        """`query` with its options made only when needed (a fresh hit needs none)."""
        value = self._fresh_local_value(k, _NONE)  # type: ignore[attr-defined]
        if value is not _NONE:
            return value
        o = make_options()
        deadline = time.monotonic() + o.wait_s
        while True:
            hit = self._local_raw_with_info(k)  # type: ignore[attr-defined]
            if hit is not None:
                return self._serve(k, hit, fn, o)
            state = self._state()
            with state.lock:
                flight = state.flights.get(k)
                leader = flight is None
                if leader:
                    flight = state.flights[k] = _Flight()
            assert flight is not None
            if not leader:
                try:
                    ok, value = flight.fut.result(timeout=max(0.0, deadline - time.monotonic()))
                except concurrent.futures.TimeoutError:
                    return self._timed_out(k, fn, o)
                if ok:
                    return value
                if time.monotonic() >= deadline:
                    return self._timed_out(k, fn, o)
                continue  # the holder's computation failed: compete again
            result: Tuple[bool, Any] = (False, None)
            try:
                value = self._lead(k, fn, o, deadline)
                result = (True, value)
                return value
            finally:
                with state.lock:
                    if state.flights.get(k) is flight:
                        del state.flights[k]
                flight.fut.set_result(result)

    def _lead(self, k: bytes, fn: Callable[[], Any], o: QueryOptions, deadline: float) -> Any:
        """The miss path of this process's caller that asks the daemon."""
        what, got = self._acquire(k, o, max(0.001, deadline - time.monotonic()))
        if what == "hit":
            return self._serve(k, got, fn, o)
        if what == "granted":
            lease: FillLease = got
            fresh = self._fresh_local(k)  # a fill that landed just before the grant
            if fresh is not None:
                lease.release()
                return self._value(*fresh)  # type: ignore[attr-defined]
            try:
                value = fn()
            except BaseException:
                lease.release()
                raise
            self._fill(lease, value, o)
            return value
        if what == "busy":
            return self._timed_out(k, fn, o)
        log.debug("cachekit: query without the daemon (%s): computing, caching nothing", got)
        return fn()

    def _serve(self, k: bytes, hit: Tuple[bytes, Any], fn: Callable[[], Any], o: QueryOptions) -> Any:
        """A hit's value (a stale one is refreshed in the background). One that cannot be
        deserialized (another serializer wrote it) is computed again and overwritten."""
        try:
            value = self._value(hit[0], hit[1])  # type: ignore[attr-defined]
        except SerializationError as e:
            log.warning("cachekit: ignoring a cached value: %s", e)
            value = fn()
            self._store_unleased(k, value, o)
            return value
        if hit[1].stale:
            self._refresh_in_background(k, fn, o)
        return value

    def _timed_out(self, k: bytes, fn: Callable[[], Any], o: QueryOptions) -> Any:
        if o.on_timeout == "error":
            raise CachekitTimeoutError(
                f"waited {o.wait_s:g} s for another caller's computation of this key; raise "
                "wait_timeout, or pass on_timeout='compute' to compute it after the wait")
        value = fn()
        self._store_unleased(k, value, o)
        return value

    # ---- stale-while-revalidate ----------------------------------------------------------------

    def _refresh_in_background(self, k: bytes, fn: Callable[[], Any], o: QueryOptions) -> None:
        state = self._state()
        with state.lock:
            if k in state.refreshing:
                return
            state.refreshing.add(k)
        from .aio import _default_executor

        try:
            _default_executor().submit(self._refresh, k, fn, o, state)
        except RuntimeError:  # the pool is shut down (interpreter exit)
            state.refreshing.discard(k)

    def _refresh(self, k: bytes, fn: Callable[[], Any], o: QueryOptions, state: _State) -> None:
        try:
            lease = self._begin_refresh(k, o)
            if lease is None:
                return
            try:
                value = fn()
            except BaseException:
                lease.release()
                raise
            self._fill(lease, value, o)
        except Exception:
            log.exception("cachekit: refreshing a stale value failed (the stale value stays served)")
        finally:
            with state.lock:
                state.refreshing.discard(k)

    def _begin_refresh(self, k: bytes, o: QueryOptions) -> Optional[FillLease]:
        """The refresh lease, if this caller is the one to refresh `k` now: it holds the lease
        and the value is still not fresh (another holder's refresh may have landed between
        this caller's stale read and its request)."""
        lease = self._refresh_lease(k, o)
        if lease is not None and self._fresh_local(k) is not None:
            lease.release()
            return None
        return lease

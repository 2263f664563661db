"""`AsyncClient`: the client for asyncio. Every method is a coroutine that never blocks the
event loop on a socket round trip.

Design. A hit is a copy out of shared memory (about a microsecond), far cheaper than handing
work to a thread (tens of microseconds), so hits are served inline, on the loop's thread.
Misses and writes are requests to cachekitd over its Unix socket (or, with ``redis_url``, to
Redis): they run in a thread pool with ``loop.run_in_executor`` while the loop goes on.

Every get first reads the shared segment inline with `cachekit_get_local`, which never leaves
the process (no socket, no Redis, no reconnect, no lock), so it cannot block whatever state
the daemon is in. Only when the segment does not answer (the key is not there, or the segment
cannot be trusted: a stale heartbeat, a client not yet connected) does the get go to the pool
for the full `cachekit_get`, which asks the daemon.

Serialization of values happens on the loop's thread for gets, and in the pool for sets.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import time
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, TypeVar, Union

from .client import Client, Info, Key, MasterKey, Pong, Seconds, Tag, Tags, _key
from .lease import DEFAULT_LEASE_TIMEOUT, DEFAULT_WAIT_TIMEOUT, FillLease, QueryOptions, _Flight, lease_pool
from .manage import NamespaceInfo, ScanItem
from .errors import CachekitTimeoutError, ClosedError, SerializationError
from .serializers import Serializer, SerializerName

__all__ = ["AsyncClient"]

R = TypeVar("R")
log = logging.getLogger("cachekit_shm")
_MISS = object()  # a get's default that no stored value can be

_pool_lock = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None


def _default_executor() -> ThreadPoolExecutor:
    """The process's pool for misses and writes (8 threads; each native client keeps at most 4
    daemon connections, extra threads wait for one)."""
    global _pool
    p = _pool
    if p is None:
        with _pool_lock:
            p = _pool
            if p is None:
                p = _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cachekit")
    return p


def _after_fork_in_child() -> None:
    global _pool, _pool_lock
    _pool_lock = threading.Lock()
    _pool = None  # its threads did not come along


os.register_at_fork(after_in_child=_after_fork_in_child)


class AsyncClient:
    """The asyncio client: the same arguments and methods as `Client`, as coroutines.

    ``executor``: where misses and writes run (default: a shared 8-thread pool).

    Hits are read inline from shared memory (`Client.get_local`); a get the segment cannot
    answer, and every write, runs in the executor (see the module's doc).

    Opening connects to the daemon on the calling thread (a local Unix-socket handshake and an
    mmap, well under a millisecond); ``lazy=True`` defers that to the first request, which then
    runs in the pool. `with_namespace` and `close` are plain methods (no I/O). An AsyncClient
    keeps no state of its own besides its `Client`: any number of loops and threads may share
    one.
    """

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
        executor: Optional[Executor] = None,
        encryption_key: Optional[MasterKey] = None,
        previous_keys: Iterable[MasterKey] = (),
        tenant: Optional[str] = None,
        hash_keys: bool = False,
        require_encryption: bool = False,
        encryption_memo_bytes: Optional[int] = None,
    ) -> None:
        client = Client(instance=instance, socket=socket, namespace=namespace, serializer=serializer,
                        redis_url=redis_url, lazy=lazy, connect_timeout=connect_timeout,
                        request_timeout=request_timeout, encryption_key=encryption_key,
                        previous_keys=previous_keys, tenant=tenant, hash_keys=hash_keys,
                        require_encryption=require_encryption,
                        encryption_memo_bytes=encryption_memo_bytes)
        self._init(client, executor)

    def _init(self, client: Client, executor: Optional[Executor]) -> None:
        self._sync = client
        self._executor = executor

    @classmethod
    def from_client(cls, client: Client, *, executor: Optional[Executor] = None) -> "AsyncClient":
        """An AsyncClient over an existing `Client` (they share its native handle; closing
        either closes it)."""
        self = object.__new__(cls)
        self._init(client, executor)
        return self

    @property
    def sync(self) -> Client:
        """The underlying synchronous `Client`."""
        return self._sync

    @property
    def namespace(self) -> Optional[str]:
        return self._sync.namespace

    @property
    def closed(self) -> bool:
        return self._sync.closed

    @property
    def encrypted(self) -> bool:
        """Whether values are encrypted (see `Client.encrypted`)."""
        return self._sync.encrypted

    def __repr__(self) -> str:
        return "<cachekit_shm.AsyncClient " + repr(self._sync)[len("<cachekit_shm.Client "):]

    def with_namespace(self, namespace: str) -> "AsyncClient":
        """An AsyncClient on another namespace, sharing connections, segment and executor."""
        return AsyncClient.from_client(self._sync.with_namespace(namespace), executor=self._executor)

    def close(self) -> None:
        """Closes the client (idempotent). Requests already running in the pool finish first."""
        self._sync.close()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __enter__(self) -> "AsyncClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        if self._sync.closed:
            raise ClosedError("this client is closed; open a new one")
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs) if kwargs else (functools.partial(fn, *args) if args else fn)
        return await loop.run_in_executor(self._executor or _default_executor(), call)

    # ---- reads -----------------------------------------------------------------------------------

    async def get(self, key: Key, default: Any = None) -> Any:
        """The value of `key`, or `default` on a miss (see `Client.get`)."""
        k = key.encode() if type(key) is str else _key(key)
        value = self._sync._local_value(k, _MISS)
        if value is _MISS:
            value = await self._run(self._sync.get, k, _MISS)
            if value is _MISS:
                return default
        return value

    async def get_raw(self, key: Key) -> Optional[bytes]:
        k = key.encode() if type(key) is str else _key(key)
        raw = self._sync._local_raw(k)
        if raw is None:
            raw = await self._run(self._sync.get_raw, k)
        return raw

    async def get_with_info(self, key: Key) -> Optional[Tuple[Any, Info]]:
        k = _key(key)
        hit = self._sync._local_raw_with_info(k)
        if hit is None:
            hit = await self._run(self._sync.get_raw_with_info, k)
            if hit is None:
                return None
        return self._sync._value(hit[0], hit[1]), hit[1]

    async def get_many(self, keys: Iterable[Key]) -> Dict[Any, Any]:
        """``{key: value}`` for the hits (see `Client.get_many`). The keys the segment holds are
        read inline; the others are asked of the daemon in the pool, in one batch."""
        keys = list(keys)
        local = self._sync._local_value
        found: Dict[Any, Any] = {}
        missing: List[Any] = []
        for key in keys:
            value = local(_key(key), _MISS)
            if value is _MISS:
                missing.append(key)
            else:
                found[key] = value
        if missing:
            found.update(await self._run(self._sync.get_many, missing))
        return {k: found[k] for k in keys if k in found}

    # ---- writes ----------------------------------------------------------------------------------

    async def set(self, key: Key, value: Any, ttl: Optional[Seconds] = None, grace: Seconds = 0,
                  tags: Tags = ()) -> None:
        await self._run(self._sync.set, key, value, ttl, grace, tags)

    async def set_raw(self, key: Key, value: Union[bytes, bytearray, memoryview], ttl: Optional[Seconds] = None,
                      grace: Seconds = 0, tags: Tags = ()) -> None:
        await self._run(self._sync.set_raw, key, value, ttl, grace, tags)

    async def set_many(self, mapping: Union[Mapping[Key, Any], Iterable[Tuple[Key, Any]]],
                       ttl: Optional[Seconds] = None, grace: Seconds = 0, tags: Tags = ()) -> None:
        items = list(mapping.items() if isinstance(mapping, Mapping) else mapping)
        await self._run(self._sync.set_many, items, ttl, grace, tags)

    async def delete(self, key: Key) -> bool:
        return await self._run(self._sync.delete, key)

    async def delete_many(self, keys: Iterable[Key]) -> int:
        return await self._run(self._sync.delete_many, list(keys))

    async def invalidate(self, *tags: Tag, exact: bool = False) -> None:
        await self._run(functools.partial(self._sync.invalidate, *tags, exact=exact))

    async def clear(self) -> None:
        await self._run(self._sync.clear)

    async def stats(self) -> Dict[str, int]:
        return await self._run(self._sync.stats)

    async def ping(self) -> Pong:
        return await self._run(self._sync.ping)

    # ---- atomic and management operations (see `Client`; every one runs in the executor) ------

    async def add(self, key: Key, value: Any, ttl: Optional[Seconds] = None, grace: Seconds = 0,
                  tags: Tags = ()) -> bool:
        return await self._run(self._sync.add, key, value, ttl, grace, tags)

    async def replace(self, key: Key, value: Any, ttl: Optional[Seconds] = None, grace: Seconds = 0,
                      tags: Tags = ()) -> bool:
        return await self._run(self._sync.replace, key, value, ttl, grace, tags)

    async def cas(self, key: Key, value: Any, version: int, ttl: Optional[Seconds] = None,
                  grace: Seconds = 0, tags: Tags = ()) -> bool:
        return await self._run(self._sync.cas, key, value, version, ttl, grace, tags)

    async def compare_and_delete(self, key: Key, version: int) -> bool:
        return await self._run(self._sync.compare_and_delete, key, version)

    async def incr(self, key: Key, delta: int = 1, *, initial: Optional[int] = 0,
                   ttl: Optional[Seconds] = None) -> Optional[int]:
        return await self._run(self._sync.incr, key, delta, initial=initial, ttl=ttl)

    async def decr(self, key: Key, delta: int = 1, *, initial: Optional[int] = 0,
                   ttl: Optional[Seconds] = None) -> Optional[int]:
        return await self._run(self._sync.decr, key, delta, initial=initial, ttl=ttl)

    async def get_and_delete(self, key: Key, default: Any = None) -> Any:
        return await self._run(self._sync.get_and_delete, key, default)

    async def touch(self, key: Key, ttl: Optional[Seconds]) -> bool:
        return await self._run(self._sync.touch, key, ttl)

    async def expire(self, key: Key, ttl: Seconds) -> bool:
        return await self._run(self._sync.expire, key, ttl)

    async def persist(self, key: Key) -> bool:
        return await self._run(self._sync.persist, key)

    async def ttl(self, key: Key) -> Optional[float]:
        return await self._run(self._sync.ttl, key)

    async def scan_iter(self, pattern: Union[str, bytes, None] = None, *, tag: Optional[Tag] = None,
                        exact: bool = False, page_size: Optional[int] = None) -> AsyncIterator[ScanItem]:
        """`Client.scan_iter` as an async iterator: each chunk of items is fetched in the
        executor, so the loop never waits on the daemon."""
        scan = await self._run(self._sync._scan_open, pattern, tag, exact, page_size)
        with scan:
            while True:
                items = await self._run(scan.take, 256)
                if not items:
                    return
                for item in items:
                    yield item

    async def delete_pattern(self, pattern: Union[str, bytes, None] = None, *, tag: Optional[Tag] = None,
                             exact: bool = False) -> int:
        return await self._run(self._sync.delete_pattern, pattern, tag=tag, exact=exact)

    async def namespaces(self) -> List[NamespaceInfo]:
        return await self._run(self._sync.namespaces)

    # ---- query (compute once per host; see cachekit_shm.lease) -----------------------------------

    async def query(self, key: Key, fn: Callable[[], Any], tags: Tags = (), ttl: Optional[Seconds] = None,
                    grace: Seconds = 0, *, wait_timeout: Seconds = DEFAULT_WAIT_TIMEOUT,
                    lease_timeout: Seconds = DEFAULT_LEASE_TIMEOUT, on_timeout: str = "compute",
                    scope: str = "host") -> Any:
        """`Client.query` for asyncio: the value of `key`, computed by `fn` once per host at a
        time. `fn` is a coroutine function (awaited on this loop) or a plain function (run in
        the executor; if it returns an awaitable, that is awaited here).

        The loop never blocks: a fresh or stale hit is read inline from shared memory (a stale
        one is refreshed by a background task, and returned at once); the wait for a lease
        runs in a pool of its own (`cachekit_shm.lease.lease_pool`), and the tasks of this
        process that miss the same key wait for one of them, so a key in flight holds one
        thread and one daemon connection whatever the number of tasks.
        """
        return await self._query(_key(key), fn, lambda: QueryOptions(ttl, grace, tags, wait_timeout,
                                                                      lease_timeout, on_timeout, scope))

    async def _query(self, k: bytes, fn: Callable[[], Any], make_options: Callable[[], QueryOptions]) -> Any:
        """`query` with its options made only when needed (a fresh hit needs none)."""
        c = self._sync
        value = c._fresh_local_value(k, _MISS)
        if value is not _MISS:
            return value
        o = make_options()
        deadline = time.monotonic() + o.wait_s
        while True:
            hit = c._local_raw_with_info(k)
            if hit is not None:
                return await self._serve(k, hit, fn, o)
            state = c._state()
            with state.lock:
                flight = state.flights.get(k)
                leader = flight is None
                if leader:
                    flight = state.flights[k] = _Flight()
            assert flight is not None
            if not leader:
                got = await _wait_future(flight.fut, deadline - time.monotonic())
                if got is None:
                    return await self._timed_out(k, fn, o)
                ok, value = got
                if ok:
                    return value
                if time.monotonic() >= deadline:
                    return await self._timed_out(k, fn, o)
                continue  # the holder's computation failed: compete again
            result: Tuple[bool, Any] = (False, None)
            try:
                value = await self._lead(k, fn, o, deadline)
                result = (True, value)
                return value
            finally:
                with state.lock:
                    if state.flights.get(k) is flight:
                        del state.flights[k]
                flight.fut.set_result(result)

    async def _compute(self, fn: Callable[[], Any]) -> Any:
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):
            return await fn()
        value = await self._run(fn)
        if inspect.isawaitable(value):
            value = await value
        return value

    async def _lead(self, k: bytes, fn: Callable[[], Any], o: QueryOptions, deadline: float) -> Any:
        c = self._sync
        loop = asyncio.get_running_loop()
        if c.closed:
            raise ClosedError("this client is closed; open a new one")
        what, got = await loop.run_in_executor(lease_pool(), c._acquire, k, o,
                                               max(0.001, deadline - time.monotonic()))
        if what == "hit":
            return await self._serve(k, got, fn, o)
        if what == "granted":
            lease: FillLease = got
            fresh = c._fresh_local(k)  # a fill that landed just before the grant
            if fresh is not None:
                lease_pool().submit(lease.release)  # a round trip: never on the loop
                return c._value(*fresh)
            try:
                value = await self._compute(fn)
            except BaseException:
                # Not awaited: a cancelled task must not wait here (release never blocks long).
                lease_pool().submit(lease.release)
                raise
            await self._run(c._fill, lease, value, o)
            return value
        if what == "busy":
            return await self._timed_out(k, fn, o)
        log.debug("cachekit: query without the daemon (%s): computing, caching nothing", got)
        return await self._compute(fn)

    async def _serve(self, k: bytes, hit: Tuple[bytes, Info], fn: Callable[[], Any], o: QueryOptions) -> Any:
        """A hit's value (a stale one is refreshed by a background task); see `Client._serve`."""
        try:
            value = self._sync._value(hit[0], hit[1])
        except SerializationError as e:
            log.warning("cachekit: ignoring a cached value: %s", e)
            value = await self._compute(fn)
            await self._run(self._sync._store_unleased, k, value, o)
            return value
        if hit[1].stale:
            self._refresh_in_background(k, fn, o)
        return value

    async def _timed_out(self, k: bytes, fn: Callable[[], Any], o: QueryOptions) -> Any:
        if o.on_timeout == "error":
            raise CachekitTimeoutError(
                f"waited {o.wait_s:g} s for another caller's computation of this key; raise "
                "wait_timeout, or pass on_timeout='compute' to compute it after the wait")
        value = await self._compute(fn)
        await self._run(self._sync._store_unleased, k, value, o)
        return value

    def _refresh_in_background(self, k: bytes, fn: Callable[[], Any], o: QueryOptions) -> None:
        state = self._sync._state()
        with state.lock:
            if k in state.refreshing:
                return
            state.refreshing.add(k)
        task = asyncio.get_running_loop().create_task(self._refresh(k, fn, o, state))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    async def _refresh(self, k: bytes, fn: Callable[[], Any], o: QueryOptions, state: Any) -> None:
        c = self._sync
        try:
            lease = await self._run(c._begin_refresh, k, o)
            if lease is None:
                return
            try:
                value = await self._compute(fn)
            except BaseException:
                lease_pool().submit(lease.release)
                raise
            await self._run(c._fill, lease, value, o)
        except Exception:
            log.exception("cachekit: refreshing a stale value failed (the stale value stays served)")
        finally:
            with state.lock:
                state.refreshing.discard(k)


# Background refreshes, kept referenced until they end (the loop holds tasks weakly).
_TASKS: "set[asyncio.Task[None]]" = set()


async def _wait_future(fut: "Any", timeout: float) -> Optional[Tuple[bool, Any]]:
    """The result of a concurrent.futures.Future, awaited without blocking the loop and
    without cancelling it (other threads and loops wait for it too); None on timeout."""
    if fut.done():
        return fut.result()
    if timeout <= 0:
        return None
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake(_: Any) -> None:
        try:
            loop.call_soon_threadsafe(lambda: waiter.done() or waiter.set_result(None))
        except RuntimeError:  # that loop is closed: nobody waits there any more
            pass

    fut.add_done_callback(wake)
    try:
        await asyncio.wait_for(waiter, timeout)
    except asyncio.TimeoutError:
        return None
    return fut.result()

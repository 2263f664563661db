"""`AsyncClient`: the client for asyncio. Every method is a coroutine that never blocks the
event loop on a socket round trip.

Design. A hit is a copy out of shared memory (about a microsecond), far cheaper than handing
work to a thread (tens of microseconds), so hits are served inline, on the loop's thread.
Misses and writes are requests to cachekitd over its Unix socket (or, with ``redis_url``, to
Redis): they run in a thread pool with ``loop.run_in_executor`` while the loop goes on.

The catch: `cachekit_get` itself asks the daemon when the segment lacks the key, and the C
library (include/cachekit.h 0.1) has no "segment only" get, so a get cannot know beforehand
whether it will stay in memory. The client therefore serves inline only the keys it has
recently seen hit (or written itself), until their TTL plus grace runs out — about 4,000 keys
per client, the oldest forgotten first. Every other get goes to the pool. A hinted key can
still miss (another process invalidated or deleted it, or it was evicted): that get then makes
its round trip inline, once, and the key leaves the hints. If an inline get ever takes longer
than ``inline_budget`` (1 ms; a stuck daemon, a stale segment), all gets go to the pool for
the next second. With a future segment-only get in the C ABI the hints become exact.

Serialization of values happens on the thread that gets or sets them (the loop's for an
inline hit).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, TypeVar, Union

from .client import Client, Info, Key, Pong, Seconds, Tag, Tags, _key, _ms
from .errors import ClosedError
from .serializers import Serializer, SerializerName

__all__ = ["AsyncClient"]

R = TypeVar("R")

_HINTS_MAX = 4096
_BREAKER_SECONDS = 1.0

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


class _Hints:
    """Keys recently seen in (or written to) the segment: key bytes -> Unix ms after which the
    entry is no longer servable (0: never). Touched only from the event loop's thread."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: Dict[bytes, int] = {}

    def note(self, k: bytes, until_ms: int) -> None:
        keys = self.keys
        keys.pop(k, None)
        keys[k] = until_ms
        if len(keys) > _HINTS_MAX:
            try:
                del keys[next(iter(keys))]
            except (KeyError, RuntimeError, StopIteration):  # a client shared by two loops' threads
                pass

    def usable(self, k: bytes) -> bool:
        until = self.keys.get(k)
        if until is None:
            return False
        if until and until <= time.time() * 1000:
            self.keys.pop(k, None)
            return False
        return True


class AsyncClient:
    """The asyncio client: the same arguments and methods as `Client`, as coroutines.

    ``executor``: where misses and writes run (default: a shared 8-thread pool).
    ``inline_budget``: seconds an inline get may take before gets stop being served inline
    for a second (see the module's doc).

    Opening connects to the daemon on the calling thread (a local Unix-socket handshake and an
    mmap, well under a millisecond); ``lazy=True`` defers that to the first request, which then
    runs in the pool. `with_namespace` and `close` are plain methods (no I/O).
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
        inline_budget: float = 0.001,
    ) -> None:
        client = Client(instance=instance, socket=socket, namespace=namespace, serializer=serializer,
                        redis_url=redis_url, lazy=lazy, connect_timeout=connect_timeout,
                        request_timeout=request_timeout)
        self._init(client, executor, inline_budget)

    def _init(self, client: Client, executor: Optional[Executor], inline_budget: float) -> None:
        self._sync = client
        self._executor = executor
        self._budget = inline_budget
        self._hints = _Hints()
        self._breaker_until = 0.0

    @classmethod
    def from_client(cls, client: Client, *, executor: Optional[Executor] = None,
                    inline_budget: float = 0.001) -> "AsyncClient":
        """An AsyncClient over an existing `Client` (they share its native handle; closing
        either closes it)."""
        self = object.__new__(cls)
        self._init(client, executor, inline_budget)
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

    def __repr__(self) -> str:
        return "<cachekit_shm.AsyncClient " + repr(self._sync)[len("<cachekit_shm.Client "):]

    def with_namespace(self, namespace: str) -> "AsyncClient":
        """An AsyncClient on another namespace, sharing connections, segment and executor."""
        return AsyncClient.from_client(self._sync.with_namespace(namespace), executor=self._executor,
                                       inline_budget=self._budget)

    def close(self) -> None:
        """Closes the client (idempotent). Requests already running in the pool finish first."""
        self._sync.close()
        self._hints.keys.clear()

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

    def _inline(self, k: bytes) -> Any:
        """The hit or miss of `k` read inline, or _DEFER when it should go to the pool."""
        if not self._hints.usable(k):
            return _DEFER
        if self._breaker_until:
            if time.monotonic() < self._breaker_until:
                return _DEFER
            self._breaker_until = 0.0
        t0 = time.perf_counter()
        hit = self._sync._probe(k)
        if hit is None or not hit[1]:
            # Not served by the segment: this get made a round trip on the loop's thread.
            self._hints.keys.pop(k, None)
            if time.perf_counter() - t0 > self._budget:
                self._breaker_until = time.monotonic() + _BREAKER_SECONDS
        return hit

    async def _pooled_probe(self, k: bytes) -> Optional[Tuple[bytes, bool, int]]:
        hit = await self._run(self._sync._probe, k)
        if hit is not None:
            self._hints.note(k, hit[2])
        return hit

    def _note_write(self, key: Key, ttl: Optional[Seconds], grace: Seconds) -> None:
        try:
            ttl_ms, grace_ms = _ms(ttl, "ttl", zero=False), _ms(grace, "grace", zero=True)
        except Exception:
            return
        until = int(time.time() * 1000) + ttl_ms + grace_ms if ttl_ms else 0
        self._hints.note(_key(key), until)

    # ---- reads -----------------------------------------------------------------------------------

    async def get(self, key: Key, default: Any = None) -> Any:
        """The value of `key`, or `default` on a miss (see `Client.get`)."""
        k = key.encode() if type(key) is str else _key(key)
        hit = self._inline(k)
        if hit is _DEFER:
            hit = await self._pooled_probe(k)
        if hit is None:
            return default
        return self._sync._loads(hit[0])

    async def get_raw(self, key: Key) -> Optional[bytes]:
        k = key.encode() if type(key) is str else _key(key)
        hit = self._inline(k)
        if hit is _DEFER:
            hit = await self._pooled_probe(k)
        return None if hit is None else hit[0]

    async def get_with_info(self, key: Key) -> Optional[Tuple[Any, Info]]:
        k = _key(key)
        if self._hints.usable(k) and not (self._breaker_until and time.monotonic() < self._breaker_until):
            t0 = time.perf_counter()
            hit = self._sync.get_raw_with_info(k)
            if hit is None or hit[1].source != "segment":
                self._hints.keys.pop(k, None)
                if time.perf_counter() - t0 > self._budget:
                    self._breaker_until = time.monotonic() + _BREAKER_SECONDS
        else:
            hit = await self._run(self._sync.get_raw_with_info, k)
            if hit is not None:
                self._hints.note(k, hit[1].grace_until_ms or hit[1].expires_ms)
        if hit is None:
            return None
        return self._sync._loads(hit[0]), hit[1]

    async def get_many(self, keys: Iterable[Key]) -> Dict[Any, Any]:
        """``{key: value}`` for the hits (see `Client.get_many`). Inline when every key is
        hinted, else in the pool."""
        keys = list(keys)
        if keys and all(self._hints.usable(_key(k)) for k in keys) and not self._breaker_until:
            return self._sync.get_many(keys)
        result = await self._run(self._sync.get_many_raw, keys)
        until = int(time.time() * 1000) + 1000  # get_many reports no TTLs: hint for a second
        for k in result:
            self._hints.note(_key(k), until)
        loads = self._sync._loads
        return {k: loads(v) for k, v in result.items()}

    # ---- writes ----------------------------------------------------------------------------------

    async def set(self, key: Key, value: Any, ttl: Optional[Seconds] = None, grace: Seconds = 0,
                  tags: Tags = ()) -> None:
        await self._run(self._sync.set, key, value, ttl, grace, tags)
        self._note_write(key, ttl, grace)

    async def set_raw(self, key: Key, value: Union[bytes, bytearray, memoryview], ttl: Optional[Seconds] = None,
                      grace: Seconds = 0, tags: Tags = ()) -> None:
        await self._run(self._sync.set_raw, key, value, ttl, grace, tags)
        self._note_write(key, ttl, grace)

    async def set_many(self, mapping: Union[Mapping[Key, Any], Iterable[Tuple[Key, Any]]],
                       ttl: Optional[Seconds] = None, grace: Seconds = 0, tags: Tags = ()) -> None:
        items = list(mapping.items() if isinstance(mapping, Mapping) else mapping)
        await self._run(self._sync.set_many, items, ttl, grace, tags)
        for key, _ in items:
            self._note_write(key, ttl, grace)

    async def delete(self, key: Key) -> bool:
        self._hints.keys.pop(_key(key), None)
        return await self._run(self._sync.delete, key)

    async def invalidate(self, *tags: Tag, exact: bool = False) -> None:
        self._hints.keys.clear()
        await self._run(functools.partial(self._sync.invalidate, *tags, exact=exact))

    async def clear(self) -> None:
        self._hints.keys.clear()
        await self._run(self._sync.clear)

    async def stats(self) -> Dict[str, int]:
        return await self._run(self._sync.stats)

    async def ping(self) -> Pong:
        return await self._run(self._sync.ping)


_DEFER: Any = object()

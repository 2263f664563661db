"""`@cached`: memoize a function's results in cachekit, shared by every process on the host.

Keys. ``"<module>.<qualname>:<digest>"``: the digest is BLAKE2b-128 of a canonical encoding of
the call's arguments, bound to the signature with defaults applied (so ``f(1)``, ``f(x=1)``
and ``f()`` with ``x=1`` as default are one entry). The encoding is the same in every process
and every run (``hash()`` is not: it is salted per process): None, bool, int, float, str,
bytes, tuples, lists, dicts and sets (sorted by encoding), enums, dataclasses, datetime /
Decimal / UUID / Path (by type and repr), objects with a ``__cache_key__()`` method (by what it
returns), and anything else by its pickle. Objects whose pickle differs between processes
(one holding a set of strings, say) need ``key=``.

Tags. Every entry is tagged ``cachekit_shm.cached/<module>/<qualname>`` (what
``f.invalidate_all()`` invalidates) plus the ``tags`` given: strings, tuples, or callables
of the call's arguments returning a tag, a list of tags, or None. Eight tags at most in all.

Failures. A cache that is down never breaks the function: gets miss and failed writes are
logged (logger ``cachekit_shm``) and skipped. A value that fails to deserialize (written by
another serializer or version) is a miss. Values that cannot be serialized raise
`SerializationError`: that is a bug to fix, not an outage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import hashlib
import inspect
import logging
import pathlib
import pickle
import threading
import uuid
from typing import Any, Callable, Iterable, List, Optional, Set, TypeVar, Union, cast, overload

from .aio import AsyncClient, _default_executor
from .client import Client, Key, Seconds, Tag, default_client, tag_path
from .errors import CachekitTimeoutError, InvalidArgumentError, SerializationError, UnavailableError

__all__ = ["cached", "key_digest"]

log = logging.getLogger("cachekit_shm")

F = TypeVar("F", bound=Callable[..., Any])
TagSpec = Union[Tag, Callable[..., Union[Tag, Iterable[Tag], None]]]
_MISS: Any = object()
_OUTAGE = (UnavailableError, CachekitTimeoutError)
FUNCTION_TAG_ROOT = "cachekit_shm.cached"

_REPR_TYPES = (datetime.datetime, datetime.date, datetime.time, datetime.timedelta, decimal.Decimal,
               uuid.UUID, fractions.Fraction, complex, pathlib.PurePath, range, slice)


def _canon(obj: Any, out: List[bytes], depth: int = 0) -> None:
    """Appends the canonical encoding of `obj` to `out` (type-tagged, length-prefixed)."""
    if depth > 64:
        raise TypeError("arguments nest more than 64 levels deep; give cached(key=...)")
    t = type(obj)
    if obj is None:
        out.append(b"N")
    elif t is bool:
        out.append(b"T" if obj else b"F")
    elif t is int:
        out.append(b"i%d;" % obj)
    elif t is float:
        out.append(b"f" + repr(obj).encode() + b";")
    elif t is str:
        b = obj.encode("utf-8", "surrogatepass")
        out.append(b"s%d:" % len(b))
        out.append(b)
    elif t is bytes or t is bytearray:
        out.append(b"b%d:" % len(obj))
        out.append(bytes(obj))
    elif t is tuple or t is list:
        out.append(b"(" if t is tuple else b"[")
        for item in obj:
            _canon(item, out, depth + 1)
        out.append(b")" if t is tuple else b"]")
    elif t is dict:
        pairs = sorted(_encode((k, v), depth + 1) for k, v in obj.items())
        out.append(b"{%d:" % len(pairs))
        out.extend(pairs)
        out.append(b"}")
    elif t is set or t is frozenset:
        items = sorted(_encode(item, depth + 1) for item in obj)
        out.append((b"<%d:" if t is set else b"|%d:") % len(items))
        out.extend(items)
        out.append(b">")
    else:
        name = f"{t.__module__}.{t.__qualname__}".encode()
        hook = getattr(obj, "__cache_key__", None)
        if hook is not None and callable(hook):
            out.append(b"k" + name + b":")
            _canon(hook(), out, depth + 1)
        elif isinstance(obj, enum.Enum):
            out.append(b"e" + name + b":")
            _canon(obj.name, out, depth + 1)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            out.append(b"d" + name + b":")
            _canon(tuple((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)), out, depth + 1)
        elif isinstance(obj, _REPR_TYPES):
            out.append(b"r" + name + b":")
            _canon(repr(obj), out, depth + 1)
        elif isinstance(obj, (str, int, float, bytes, tuple, list, dict, set, frozenset)):
            # Subclasses (IntEnum handled above, NamedTuple, str subclasses...): by type + value.
            out.append(b"x" + name + b":")
            base: Any = next(b for b in (bool, int, float, str, bytes, tuple, list, dict, frozenset, set)
                        if isinstance(obj, b))
            _canon(base(obj), out, depth + 1)
        else:
            try:
                data = pickle.dumps(obj, protocol=4)
            except Exception as e:
                raise TypeError(
                    f"cannot derive a cache key from an argument of type {t.__module__}.{t.__qualname__} "
                    f"({e}); give cached(key=...) or define __cache_key__() on it"
                ) from e
            out.append(b"p%d:" % len(data))
            out.append(data)


def _encode(obj: Any, depth: int = 0) -> bytes:
    out: List[bytes] = []
    _canon(obj, out, depth)
    return b"".join(out)


def key_digest(obj: Any) -> str:
    """The hex BLAKE2b-128 digest of `obj`'s canonical encoding (stable across processes)."""
    return hashlib.blake2b(_encode(obj), digest_size=16).hexdigest()


class _Resolver:
    """Which client a decorated function uses, resolved on each call (cheap: identity
    checks) so that set_default_client and fork are followed."""

    def __init__(self, client: Union[Client, AsyncClient, None], namespace: Optional[str], secure: bool = False):
        self.given = client
        self.namespace = namespace
        self.secure = secure
        self.lock = threading.Lock()
        self.base: Any = None
        self.sync_client: Optional[Client] = None
        self.async_client: Optional[AsyncClient] = None

    def _base(self) -> Client:
        given = self.given
        if given is None:
            return default_client()
        if isinstance(given, AsyncClient):
            return given.sync
        return given

    def sync(self) -> Client:
        base = self._base()
        if base is not self.base or self.sync_client is None or self.sync_client.closed:
            with self.lock:
                self._refresh(base)
        return cast(Client, self.sync_client)

    def aio(self) -> AsyncClient:
        base = self._base()
        if base is not self.base or self.async_client is None or self.async_client.closed:
            with self.lock:
                self._refresh(base)
        return cast(AsyncClient, self.async_client)

    def _refresh(self, base: Client) -> None:
        if self.secure:
            _check_secure(base, "a function")
        if self.namespace is not None and self.namespace != base.namespace:
            client = base.with_namespace(self.namespace)
        else:
            client = base
        self.base = base
        self.sync_client = client
        if isinstance(self.given, AsyncClient) and client is self.given.sync:
            self.async_client = self.given
        else:
            self.async_client = AsyncClient.from_client(client)


def _check_secure(client: Client, ident: str) -> None:
    if not client.encrypted:
        raise InvalidArgumentError(
            f"cached(secure=True) on {ident}: the client does not encrypt; open it with "
            "Client(encryption_key=...) (or set CACHEKIT_MASTER_KEY / CACHEKIT_MASTER_KEY_FILE for "
            "the default client), or drop secure=True")


@overload
def cached(fn: F) -> F: ...


@overload
def cached(
    *,
    ttl: Optional[Seconds] = None,
    tags: Iterable[TagSpec] = (),
    namespace: Optional[str] = None,
    client: Union[Client, AsyncClient, None] = None,
    key: Optional[Callable[..., Key]] = None,
    grace: Seconds = 0,
    secure: bool = False,
) -> Callable[[F], F]: ...


def cached(
    fn: Optional[F] = None,
    *,
    ttl: Optional[Seconds] = None,
    tags: Iterable[TagSpec] = (),
    namespace: Optional[str] = None,
    client: Union[Client, AsyncClient, None] = None,
    key: Optional[Callable[..., Key]] = None,
    grace: Seconds = 0,
    secure: bool = False,
) -> Any:
    """Caches the function's results (sync or ``async def``). See the module's doc.

    ``ttl``: seconds (None: until invalidated or evicted). ``grace``: after the TTL, serve the
    old value for this long while one caller per process recomputes it in the background.
    ``tags``: tags, or callables of the arguments giving tags. ``namespace``: default the
    client's. ``client``: a Client or AsyncClient (default: `default_client()`, from
    ``$CACHEKIT_SOCKET`` / ``$CACHEKIT_INSTANCE``). ``key``: a function of the arguments
    returning the part of the key after ``"<module>.<qualname>:"`` instead of the digest.
    ``secure``: the client must encrypt values (``Client(encryption_key=...)``, or a key in the
    environment for the default client): `InvalidArgumentError` at decoration when the client
    is given, else at the first call. A value that does not decrypt raises `DecryptError`
    (never a silent miss).

    The decorated function gains ``cache_key(*args, **kwargs)``, ``invalidate(*args,
    **kwargs)`` (drops that call's entry; True if it was there) and ``invalidate_all()``; on
    an ``async def`` function the last two are coroutines.
    """
    if fn is not None:
        return cached()(fn)

    tag_specs: List[Any] = [tags] if isinstance(tags, str) or callable(tags) else list(tags)
    for spec in tag_specs:
        if not callable(spec):
            tag_path(spec)  # a malformed static tag fails here, not on the first call
    resolver = _Resolver(client, namespace, secure)

    def decorate(func: F) -> F:
        ident = f"{func.__module__}.{func.__qualname__}"
        if secure and client is not None:
            _check_secure(client.sync if isinstance(client, AsyncClient) else client, ident)
        fn_tag = f"{FUNCTION_TAG_ROOT}/{func.__module__}/{func.__qualname__}"
        sig = inspect.signature(func)
        refreshing: Set[Key] = set()

        def cache_key(*args: Any, **kwargs: Any) -> Key:
            if key is not None:
                part = key(*args, **kwargs)
                if isinstance(part, bytes):
                    return ident.encode() + b":" + part
                if not isinstance(part, str):
                    raise TypeError(f"cached(key=...) returned {type(part).__name__}; return str or bytes")
                return f"{ident}:{part}"
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            return f"{ident}:{key_digest(tuple(bound.arguments.items()))}"

        def tags_for(args: Any, kwargs: Any) -> List[str]:
            out = [fn_tag]
            for spec in tag_specs:
                if callable(spec):
                    got = spec(*args, **kwargs)
                    if got is None:
                        continue
                    if isinstance(got, (str, tuple)):
                        out.append(tag_path(got))
                    else:
                        out.extend(tag_path(t) for t in got)
                else:
                    out.append(tag_path(spec))
            return out

        def store(c: Client, k: Key, value: Any, args: Any, kwargs: Any) -> None:
            try:
                c.set(k, value, ttl=ttl, grace=grace, tags=tags_for(args, kwargs))
            except _OUTAGE as e:
                log.warning("cachekit: not caching %s: %s", ident, e)

        def lookup(c: Client, k: Key) -> Any:
            """The cached value, _MISS, or (value, stale) when grace is on."""
            try:
                if grace:
                    hit = c.get_with_info(k)
                    return _MISS if hit is None else (hit[0], hit[1].stale)
                return c.get(k, _MISS)
            except SerializationError as e:
                log.warning("cachekit: ignoring the cached value of %s: %s", ident, e)
                return _MISS

        if inspect.iscoroutinefunction(func):

            async def refresh_async(c: AsyncClient, k: Key, args: Any, kwargs: Any) -> None:
                try:
                    value = await func(*args, **kwargs)
                    await c._run(store, c.sync, k, value, args, kwargs)
                except Exception:
                    log.exception("cachekit: refreshing %s failed", ident)
                finally:
                    refreshing.discard(k)

            tasks: Set["asyncio.Task[None]"] = set()

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                c = resolver.aio()
                k = cache_key(*args, **kwargs)
                try:
                    if grace:
                        hit = await c.get_with_info(k)
                        got = _MISS if hit is None else (hit[0], hit[1].stale)
                    else:
                        got = await c.get(k, _MISS)
                except SerializationError as e:
                    log.warning("cachekit: ignoring the cached value of %s: %s", ident, e)
                    got = _MISS
                if got is not _MISS:
                    if not grace:
                        return got
                    value, stale = got
                    if stale and k not in refreshing:
                        refreshing.add(k)
                        task = asyncio.get_running_loop().create_task(refresh_async(c, k, args, kwargs))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    return value
                value = await func(*args, **kwargs)
                await c._run(store, c.sync, k, value, args, kwargs)
                return value

            async def invalidate_async(*args: Any, **kwargs: Any) -> bool:
                return await resolver.aio().delete(cache_key(*args, **kwargs))

            async def invalidate_all_async() -> None:
                await resolver.aio().invalidate(fn_tag)

            wrapper: Any = async_wrapper
            wrapper.invalidate = invalidate_async
            wrapper.invalidate_all = invalidate_all_async
        else:

            def refresh_sync(c: Client, k: Key, args: Any, kwargs: Any) -> None:
                try:
                    store(c, k, func(*args, **kwargs), args, kwargs)
                except Exception:
                    log.exception("cachekit: refreshing %s failed", ident)
                finally:
                    refreshing.discard(k)

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                c = resolver.sync()
                k = cache_key(*args, **kwargs)
                got = lookup(c, k)
                if got is not _MISS:
                    if not grace:
                        return got
                    value, stale = got
                    if stale and k not in refreshing:
                        refreshing.add(k)
                        _default_executor().submit(refresh_sync, c, k, args, kwargs)
                    return value
                value = func(*args, **kwargs)
                store(c, k, value, args, kwargs)
                return value

            def invalidate_sync(*args: Any, **kwargs: Any) -> bool:
                return resolver.sync().delete(cache_key(*args, **kwargs))

            def invalidate_all_sync() -> None:
                resolver.sync().invalidate(fn_tag)

            wrapper = sync_wrapper
            wrapper.invalidate = invalidate_sync
            wrapper.invalidate_all = invalidate_all_sync

        wrapper.cache_key = cache_key
        wrapper.cache_tag = fn_tag
        return cast(F, wrapper)

    return decorate

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

Coalescing. A call is a `Client.query`: on a miss the function runs once on the host while
the other callers of the same arguments, in every process, wait for its result; an exception
reaches only the caller whose run raised it (the others wait for the next run).

Failures. A cache that is down never breaks the function: it runs, and failed writes are
logged (logger ``cachekit_shm``) and skipped. A value that fails to deserialize (written by
another serializer or version) is a miss. Values that cannot be serialized raise
`SerializationError`: that is a bug to fix, not an outage.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import hashlib
import inspect
import pathlib
import pickle
import threading
import uuid
from typing import Any, Callable, Iterable, List, Optional, TypeVar, Union, cast, overload

from .aio import AsyncClient
from .client import Client, Key, Seconds, Tag, _key, default_client, tag_path
from .errors import InvalidArgumentError
from .lease import DEFAULT_LEASE_TIMEOUT, DEFAULT_WAIT_TIMEOUT, QueryOptions

__all__ = ["cached", "key_digest"]


F = TypeVar("F", bound=Callable[..., Any])
TagSpec = Union[Tag, Callable[..., Union[Tag, Iterable[Tag], None]]]
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
    wait_timeout: Seconds = DEFAULT_WAIT_TIMEOUT,
    lease_timeout: Seconds = DEFAULT_LEASE_TIMEOUT,
    on_timeout: str = "compute",
    scope: str = "host",
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
    wait_timeout: Seconds = DEFAULT_WAIT_TIMEOUT,
    lease_timeout: Seconds = DEFAULT_LEASE_TIMEOUT,
    on_timeout: str = "compute",
    scope: str = "host",
    secure: bool = False,
) -> Any:
    """Caches the function's results (sync or ``async def``). See the module's doc.

    Each call is a `Client.query`: a miss runs the function once on the whole host (one
    caller holds the key's fill lease; the others, in every process, wait for its value),
    and a value computed while one of its tags was invalidated is not stored as fresh.

    ``ttl``: seconds (None: until invalidated or evicted). ``grace``: after the TTL, serve the
    old value for this long while one caller of the host recomputes it in the background.
    ``wait_timeout``, ``lease_timeout``, ``on_timeout``, ``scope``: as `Client.query`.
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

    QueryOptions(ttl, grace, (), wait_timeout, lease_timeout, on_timeout, scope)  # fails here if bad
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

        def options(args: Any, kwargs: Any) -> Callable[[], QueryOptions]:
            # Made by query only on a stale hit or a miss: a fresh hit evaluates no tag.
            return lambda: QueryOptions(ttl, grace, tags_for(args, kwargs), wait_timeout, lease_timeout,
                                        on_timeout, scope)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                c = resolver.aio()
                k = cache_key(*args, **kwargs)

                async def compute() -> Any:
                    return await func(*args, **kwargs)

                return await c._query(_key(k), compute, options(args, kwargs))

            async def invalidate_async(*args: Any, **kwargs: Any) -> bool:
                return await resolver.aio().delete(cache_key(*args, **kwargs))

            async def invalidate_all_async() -> None:
                await resolver.aio().invalidate(fn_tag)

            wrapper: Any = async_wrapper
            wrapper.invalidate = invalidate_async
            wrapper.invalidate_all = invalidate_all_async
        else:

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                c = resolver.sync()
                k = cache_key(*args, **kwargs)
                return c._query(_key(k), functools.partial(func, *args, **kwargs), options(args, kwargs))

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

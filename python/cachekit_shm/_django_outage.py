"""``OPTIONS["IGNORE_EXCEPTIONS"]`` of the Django backend: while cachekitd cannot answer (it
is restarting, stopped, or stuck past ``request_timeout``), cache calls become logged no-ops
instead of raising, as django-redis's option of the same name does, so a view survives a
daemon restart without a try/except around every call.

Only the errors of an unreachable daemon are swallowed (`UnavailableError`,
`CachekitTimeoutError`): a bad key, a value over the size limit, a value that does not decrypt
still raise, since retrying cannot fix them. Each swallowed error is logged at WARNING on the
logger ``cachekit_shm.django`` (django-redis logs on ``django_redis.cache``), with the
operation and the error.

What each call returns instead: what Django's API returns for "not there" or "not done".
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable, Dict

from .errors import CachekitTimeoutError, UnavailableError

logger = logging.getLogger("cachekit_shm.django")

# The errors of a daemon that cannot answer now.
OUTAGE_ERRORS = (UnavailableError, CachekitTimeoutError)


def _default(args: tuple, kwargs: dict, position: int = 1) -> Any:
    """The `default` argument of get(key, default=None, version=None)."""
    if "default" in kwargs:
        return kwargs["default"]
    return args[position] if len(args) > position else None


def _computed_default(args: tuple, kwargs: dict) -> Any:
    """get_or_set's default, computed when callable (the value the caller asked for)."""
    value = _default(args, kwargs)
    return value() if callable(value) else value


def _all_keys_failed(args: tuple, kwargs: dict) -> list:
    """set_many's failed keys: every key of `data`."""
    data = kwargs["data"] if "data" in kwargs else (args[0] if args else {})
    return list(data)


def _const(value: Any) -> Callable[[tuple, dict], Any]:
    return lambda args, kwargs: value


# Method name (the sync one; the async one is "a" + name where Django has it) -> the result
# of a call that could not reach the daemon.
FALLBACKS: Dict[str, Callable[[tuple, dict], Any]] = {
    "get": _default,
    "get_many": _const({}),
    "has_key": _const(False),
    "get_or_set": _computed_default,
    "add": _const(False),
    "set": _const(False),
    "set_tagged": _const(False),
    "set_many": _all_keys_failed,
    "touch": _const(False),
    "delete": _const(False),
    "delete_many": _const(None),
    "clear": _const(False),
    "incr": _const(None),
    "decr": _const(None),
    "invalidate_tags": _const(None),
    "ttl": _const(None),
    "pttl": _const(None),
    "expire": _const(False),
    "persist": _const(False),
    "delete_pattern": _const(0),
    "keys": _const([]),
}
ASYNC_NAMES = {
    "get", "get_many", "has_key", "get_or_set", "add", "set", "set_tagged", "set_many", "touch",
    "delete", "delete_many", "clear", "incr", "decr", "invalidate_tags",
}


def _log(operation: str, exc: BaseException) -> None:
    logger.warning("cache %s ignored (IGNORE_EXCEPTIONS): %s", operation, exc)


def _sync(name: str, method: Callable[..., Any], fallback: Callable[[tuple, dict], Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except OUTAGE_ERRORS as exc:
            _log(name, exc)
            return fallback(args, kwargs)

    return call


def _async(name: str, method: Callable[..., Any], fallback: Callable[[tuple, dict], Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except OUTAGE_ERRORS as exc:
            _log(name, exc)
            value = fallback(args, kwargs)
            return await value if inspect.isawaitable(value) else value

    return call


def ignore_outages(cache: Any) -> None:
    """Wraps `cache`'s methods (on the instance) so that an outage returns FALLBACKS."""
    for name, fallback in FALLBACKS.items():
        setattr(cache, name, _sync(name, getattr(cache, name), fallback))
        if name in ASYNC_NAMES:
            aname = "a" + name
            setattr(cache, aname, _async(aname, getattr(cache, aname), fallback))

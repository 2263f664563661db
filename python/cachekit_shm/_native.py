"""The compiled cffi module, the mapping of result codes to exceptions, and `Native`, the one
base class that owns every native handle (client, batch, stats snapshot)."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional, Type

from ._cachekit import ffi, lib
from .errors import (
    CachekitError,
    CachekitTimeoutError,
    ClosedError,
    DecryptError,
    EncryptedValueError,
    InvalidArgumentError,
    PlaintextValueError,
    NotPermittedError,
    TooLargeError,
    UnavailableError,
)

__all__ = ["ffi", "lib", "Native", "raise_for", "last_error_message"]

OK = lib.CACHEKIT_OK
MISS = lib.CACHEKIT_MISS
BUFFER_TOO_SMALL = lib.CACHEKIT_BUFFER_TOO_SMALL

# The names of the result codes, from the header's `enum cachekit_result` itself.
_CODE_NAMES: Dict[int, str] = dict(ffi.typeof("enum cachekit_result").elements)

_EXCEPTIONS: Dict[int, Type[CachekitError]] = {
    lib.CACHEKIT_INVALID_ARGUMENT: InvalidArgumentError,
    lib.CACHEKIT_NULL_ARGUMENT: InvalidArgumentError,
    lib.CACHEKIT_TOO_LARGE: TooLargeError,
    lib.CACHEKIT_UNAVAILABLE: UnavailableError,
    lib.CACHEKIT_TIMEOUT: CachekitTimeoutError,
    lib.CACHEKIT_NOT_PERMITTED: NotPermittedError,
    lib.CACHEKIT_DECRYPT: DecryptError,
    lib.CACHEKIT_ENCRYPTED: EncryptedValueError,
    lib.CACHEKIT_PLAINTEXT: PlaintextValueError,
}

# Said after the library's message for CACHEKIT_ENCRYPTED, which names the C and Rust options.
_ENCRYPTED_HINT = (
    "; in Python: Client(encryption_key=...) (32 bytes, or 64 hex digits / base64 text), "
    "with the writers' tenant= if they set one"
)



def last_error_message() -> str:
    """The message of this thread's last failing call (the library keeps one per thread)."""
    needed = ffi.new("size_t *")
    buf = ffi.new("char[]", 512)
    rc = lib.cachekit_last_error_message(buf, 512, needed)
    if rc == BUFFER_TOO_SMALL:
        buf = ffi.new("char[]", needed[0])
        rc = lib.cachekit_last_error_message(buf, needed[0], needed)
    if rc != OK:
        return ""
    return ffi.string(buf).decode("utf-8", "replace")


def make_error(code: int, context: str = "") -> CachekitError:
    """The exception for a failing result code, with the library's last error message. Call
    it on the thread that made the failing call, right after it."""
    message = last_error_message()
    if not message:
        message = ffi.string(lib.cachekit_result_describe(code)).decode("utf-8", "replace")
    if code == lib.CACHEKIT_ENCRYPTED:
        message += _ENCRYPTED_HINT
    if context:
        message = f"{context}: {message}"
    name = _CODE_NAMES.get(code, f"code {code}")
    return _EXCEPTIONS.get(code, CachekitError)(message, code, name)


def raise_for(code: int, context: str = "") -> None:
    """Raises the exception of a failing result code (not for OK / MISS)."""
    raise make_error(code, context)


class Native:
    """Owns one native handle: idempotent `close()`, context manager, finalizer, and a
    use-after-close check.

    The handle is a cffi pointer wrapped with ``ffi.gc(ptr, free)``: the native free runs when
    the last reference to that pointer goes away. `close()` drops this object's reference, so
    the handle is freed at once, unless another thread is inside a call with it at that
    moment (its local reference keeps it alive): then it is freed when that call returns.
    Closing can therefore never free memory under a running call. Dropping the object without
    closing frees the handle the same way (the finalizer).
    """

    __slots__ = ("_ptr", "__weakref__")
    _free: ClassVar[Any]  # the lib function that frees this kind of handle
    _kind: ClassVar[str] = "handle"

    def __init__(self, raw: Any) -> None:
        self._ptr: Optional[Any] = ffi.gc(raw, type(self)._free)

    def _live(self) -> Any:
        """The handle, or ClosedError (the use-after-close check)."""
        ptr = self._ptr
        if ptr is None:
            raise ClosedError(f"this {self._kind} is closed")
        return ptr

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def close(self) -> None:
        """Frees the native handle. Idempotent."""
        self._ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Batch(Native):
    """A `cachekit_batch` (the result of `cachekit_get_many`)."""

    __slots__ = ()
    _free = lib.cachekit_batch_free
    _kind = "batch"


class StatsSnapshot(Native):
    """A `cachekit_stats` snapshot."""

    __slots__ = ()
    _free = lib.cachekit_stats_free
    _kind = "stats snapshot"

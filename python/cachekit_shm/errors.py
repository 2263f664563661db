"""Exceptions. Every one is a `CachekitError`; those raised for a result code of the C library
carry the code and the library's message for that failure (what went wrong and what to do).

Some also derive from the built-in exception a Python programmer would catch:
`InvalidArgumentError` and `TooLargeError` are `ValueError`s, `CachekitTimeoutError` is a
`TimeoutError`, `NotPermittedError` a `PermissionError`, `UnavailableError` a
`ConnectionError`.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "CachekitError",
    "UnavailableError",
    "TooLargeError",
    "InvalidArgumentError",
    "NotPermittedError",
    "CachekitTimeoutError",
    "ClosedError",
    "SerializationError",
    "DecryptError",
    "EncryptedValueError",
    "PlaintextValueError",
]


class CachekitError(Exception):
    """Base of every cachekit_shm error.

    ``code`` is the C library's result code (``None`` for errors raised by the Python layer),
    ``code_name`` its name (``"CACHEKIT_UNAVAILABLE"``), ``message`` the library's text.
    """

    code: Optional[int]
    code_name: Optional[str]
    message: str

    def __init__(self, message: str, code: Optional[int] = None, code_name: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.code_name = code_name

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # picklable across processes (multiprocessing results)
        return (type(self), (self.message, self.code, self.code_name))


class UnavailableError(CachekitError, ConnectionError):
    """cachekitd cannot be reached (not running, socket missing, connection lost). Gets never
    raise it: they miss instead. Writes do."""


class TooLargeError(CachekitError, ValueError):
    """A key, namespace, value, tag or tag list is over a limit (the message names it)."""


class InvalidArgumentError(CachekitError, ValueError):
    """An argument is refused: an empty namespace, a malformed tag (``a//b``), a bad TTL."""


class NotPermittedError(CachekitError, PermissionError):
    """The daemon's socket or the daemon refuses this process (``--writer-uids`` ...)."""


class CachekitTimeoutError(CachekitError, TimeoutError):
    """cachekitd did not answer within ``request_timeout`` (stuck or overloaded)."""


class ClosedError(CachekitError):
    """The client was closed: open a new one."""


class SerializationError(CachekitError):
    """A value cannot be serialized (the message names its type and the serializer), or
    stored bytes cannot be deserialized with this client's serializer."""


class DecryptError(CachekitError):
    """An encrypted value did not decrypt: a wrong master key or tenant, a tampered byte, or a
    ciphertext copied from another key or namespace (``CACHEKIT_DECRYPT``). Never garbage,
    never a miss."""


class EncryptedValueError(CachekitError):
    """The value is encrypted and this client has no key (``CACHEKIT_ENCRYPTED``): open it
    with ``encryption_key=`` (or ``CACHEKIT_MASTER_KEY`` / ``CACHEKIT_MASTER_KEY_FILE``) and
    the writers' tenant."""


class PlaintextValueError(CachekitError):
    """The value is not encrypted and this client was opened with
    ``require_encryption=True`` (``CACHEKIT_PLAINTEXT``)."""

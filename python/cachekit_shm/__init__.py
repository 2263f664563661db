"""cachekit_shm: Python client of cachekit, the per-host shared-memory cache.

    from cachekit_shm import Client, cached

    with Client(namespace="app") as cache:
        cache.set("user:42", {"name": "Ada"}, ttl=60, tags=[("users", 42)])
        cache.get("user:42")            # {'name': 'Ada'}, read from shared memory
        cache.invalidate(("users", 42))

    @cached(ttl=300, tags=[lambda user_id: ("users", user_id)])
    def profile(user_id: int) -> dict: ...

Hits are memory reads of the daemon's segment (no syscall, no lock); misses and writes go to
cachekitd over its Unix socket. See python/README.md.
"""

from .aio import AsyncClient
from .client import Client, Info, Key, Pong, Seconds, Tag, Tags, default_client, set_default_client, version
from .decorator import cached
from .manage import NamespaceInfo, ScanItem
from .errors import (
    CachekitError,
    CachekitTimeoutError,
    ClosedError,
    DecryptError,
    EncryptedValueError,
    InvalidArgumentError,
    NotPermittedError,
    PlaintextValueError,
    SerializationError,
    TooLargeError,
    UnavailableError,
)
from .serializers import Serializer

__version__ = "0.1.0"

__all__ = [
    "Client",
    "AsyncClient",
    "cached",
    "Info",
    "ScanItem",
    "NamespaceInfo",
    "Pong",
    "Key",
    "Tag",
    "Tags",
    "Seconds",
    "Serializer",
    "default_client",
    "set_default_client",
    "version",
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

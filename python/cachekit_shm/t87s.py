"""cachekitd as the storage of t87s (PyPI ``t87s``, its ``AsyncStorageAdapter`` protocol).

One line switches a t87s cache to the host's shared memory::

    from cachekit_shm.t87s import CachekitAdapter

    cache = MyCache(adapter=CachekitAdapter(namespace="blog"))     # was AsyncMemoryAdapter()

Every process of the host then shares the entries (a hit is a copy out of shared memory, no
syscall), and an ``invalidate`` in one process is seen by all of them at once.

How t87s's data is stored (one cachekitd namespace per adapter; ``clear`` clears it):

- An entry is the pickle of ``(value, tags, created_at, expires_at, grace_until)`` under the
  key ``"e:" + key``: any picklable value round-trips. It is kept until ``grace_until`` (or
  ``expires_at`` without grace), as t87s's Redis adapter does; t87s judges freshness from
  its own fields. An entry written already past that time (only hand-built ones are) is kept
  until evicted. It carries the entry's t87s tags as cachekitd tags (`tag_path`).
- A tag's invalidation time is an integer counter under ``"t:" + tag_path(tag)``, with no
  TTL. ``get_tag_invalidation_time`` reads it from the shared segment only
  (``get_local``): a t87s hit checks every tag and every parent of it, and none of those
  checks is a socket round trip.
- ``set_tag_invalidation_time`` writes that time *and* invalidates the tag in cachekitd
  (hierarchically, as t87s means it: ``("posts", "1")`` covers ``("posts", "1",
  "comments")``). That invalidation is what guarantees no stale read: it bumps the tag's
  generation counter in the segment header, which is never evicted, and every entry written
  before it with that tag or one below is dropped on the whole host. A time record, like
  any entry, may be evicted under memory pressure; t87s then reads "never invalidated",
  which is safe because the entries that invalidation covered are gone already. (The one
  thing a lost record can no longer do is t87s's own check of an entry whose ``created_at``
  precedes an invalidation that reached the daemon before the entry's ``set``: t87s takes
  ``created_at`` after its computation, so that window is t87s's own race, as wide as the
  time between taking that timestamp and the ``set`` arriving.)

Tag paths. A t87s tag is a tuple of strings; its cachekitd path joins the parts with "/",
each part escaped so that the mapping is one-to-one: "%" → "%25", "/" → "%2F", an empty part
→ "%00". ``("posts", "1", "comments")`` → ``"posts/1/comments"``; ``("a/b",)`` →
``"a%2Fb"``, which is not ``("a", "b")``. A typed t87s schema (``TagSchema`` with ``Wild`` and
``Static``) produces exactly such tuples: ``cache.t.posts("1").comments`` is ``("posts",
"1", "comments")``, so schema paths are cachekitd paths and t87s's prefix invalidation is
cachekitd's hierarchical invalidation. cachekitd paths have at most 8 segments: a deeper tag
is cut to its first 8, on both the entry and the invalidation side, so it is invalidated as
often as it should be and sometimes more (never less). An entry with more than 8 distinct
tags, or a tag path over 1024 bytes, cannot be tagged in cachekitd and is not stored (a
warning is logged; t87s computes it on every call).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable, List, Optional, Sequence, Union

from t87s.types import CacheEntry, Tag

from .aio import AsyncClient
from .client import Client

__all__ = ["CachekitAdapter", "tag_path", "MAX_TAGS", "MAX_DEPTH", "MAX_TAG_BYTES"]

log = logging.getLogger("cachekit_shm")

MAX_TAGS = 8
"""cachekitd's tags per entry (one generation is recorded per tag prefix)."""
MAX_DEPTH = 8
"""cachekitd's segments per tag path."""
MAX_TAG_BYTES = 1024
"""cachekitd's bytes per tag path."""

_ENTRY = b"e:"
_TIME = b"t:"
_MISS: Any = object()


def _escape(part: Any) -> str:
    s = str(part)
    if not s:
        return "%00"
    return s.replace("%", "%25").replace("/", "%2F")


def tag_path(tag: Sequence[Any]) -> str:
    """The cachekitd tag path of a t87s tag (see the module's doc): escaped parts joined with
    "/", cut to `MAX_DEPTH` segments. "" for an empty tag."""
    return "/".join(_escape(p) for p in tuple(tag)[:MAX_DEPTH])


def _native_tags(tags: Iterable[Sequence[Any]]) -> Optional[List[str]]:
    """The cachekitd tags of an entry, or None when they cannot all be recorded."""
    out: List[str] = []
    for tag in tags:
        path = tag_path(tag)
        if not path:
            continue
        if len(path.encode()) > MAX_TAG_BYTES:
            return None
        if path not in out:
            out.append(path)
    if len(out) > MAX_TAGS:
        return None
    return out


def _now_ms() -> int:
    return int(time.time() * 1000)


class CachekitAdapter:
    """A t87s ``AsyncStorageAdapter`` over cachekitd (see the module's doc).

    ``client``: an `AsyncClient` or `Client` (its serializer must be "pickle", the default),
    kept open by the caller; or none, and the keyword arguments open one (``namespace``,
    ``socket``, ``instance``, ``redis_url``...), closed by ``disconnect``. The namespace is
    this adapter's alone: ``clear`` drops all of it.
    """

    def __init__(self, client: Union[AsyncClient, Client, None] = None, **client_kwargs: Any) -> None:
        if client is None:
            if client_kwargs.get("serializer", "pickle") != "pickle":
                raise ValueError("CachekitAdapter stores pickles: leave serializer unset")
            client_kwargs["serializer"] = "pickle"
            client_kwargs.setdefault("namespace", "t87s")
            self._aio = AsyncClient(**client_kwargs)
            self._owned = True
        else:
            if client_kwargs:
                raise TypeError("pass either a client or client keyword arguments, not both")
            self._aio = client if isinstance(client, AsyncClient) else AsyncClient.from_client(client)
            if self._aio.sync.serializer.name != "pickle":
                raise ValueError("CachekitAdapter needs a client with serializer='pickle'")
            self._owned = False
        self._sync = self._aio.sync

    @property
    def client(self) -> AsyncClient:
        """The `AsyncClient` underneath."""
        return self._aio

    async def get(self, key: str) -> Optional[CacheEntry[object]]:
        """The entry of `key`, or None."""
        k = _ENTRY + key.encode()
        got = self._sync._local_value(k, _MISS)
        if got is _MISS:
            got = await self._aio.get(k, _MISS)
            if got is _MISS:
                return None
        value, tags, created_at, expires_at, grace_until = got
        return CacheEntry(value=value, tags=[Tag(t) for t in tags], created_at=created_at,
                          expires_at=expires_at, grace_until=grace_until)

    async def set(self, key: str, entry: CacheEntry[object]) -> None:
        """Stores `entry` under `key`, tagged in cachekitd with its t87s tags."""
        native = _native_tags(entry.tags)
        if native is None:
            log.warning(
                "cachekit_shm.t87s: not caching %r: more than %d distinct tags or a tag path over %d "
                "bytes cannot be recorded for invalidation; use fewer or shorter tags",
                key, MAX_TAGS, MAX_TAG_BYTES)
            await self._aio.delete(_ENTRY + key.encode())  # an older value must not stay served
            return
        end = entry.grace_until or entry.expires_at
        left_ms = end - _now_ms()
        ttl = left_ms / 1000.0 if left_ms > 0 else None
        data = (entry.value, [tuple(t) for t in entry.tags], entry.created_at, entry.expires_at,
                entry.grace_until)
        await self._aio.set(_ENTRY + key.encode(), data, ttl=ttl, tags=native)

    async def delete(self, key: str) -> None:
        await self._aio.delete(_ENTRY + key.encode())

    async def get_tag_invalidation_time(self, tag: Tag) -> Optional[int]:
        """When `tag` was last invalidated (Unix ms), or None: read from shared memory, never
        a request to the daemon (see the module's doc for why a missing record is safe)."""
        got = self._sync._local_value(_TIME + tag_path(tag).encode(), None)
        return got if got is None else int(got)

    async def set_tag_invalidation_time(self, tag: Tag, timestamp: int) -> None:
        """Records `timestamp` for `tag` and invalidates the tag (and every tag below it) in
        cachekitd, in one trip to the executor."""
        await self._aio._run(self._invalidate, tag_path(tag), int(timestamp))

    def _invalidate(self, path: str, timestamp: int) -> None:
        self._sync.set(_TIME + path.encode(), timestamp)
        if path and len(path.encode()) <= MAX_TAG_BYTES:
            # Past the limit no entry carries the tag (set refuses to store those).
            self._sync.invalidate(path)

    async def clear(self) -> None:
        """Drops every entry and every tag time of this adapter's namespace (O(1))."""
        await self._aio.clear()

    async def disconnect(self) -> None:
        """Closes the client if this adapter opened it."""
        if self._owned:
            self._aio.close()

    def __repr__(self) -> str:
        return f"CachekitAdapter({self._aio!r})"

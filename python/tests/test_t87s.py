"""cachekit_shm.t87s.CachekitAdapter on a real cachekitd, beyond t87s's own suite
(t87s_suite/): values of any picklable type, the tag path encoding, typed-schema invalidation
mapped onto cachekitd's hierarchical tags, invalidations that survive a lost time record, and
a hit that makes no request to the daemon."""

from __future__ import annotations

import dataclasses
import logging
import time

import pytest
from t87s import AsyncMemoryAdapter, CacheEntry, QueryCache, Static, Tag, TagSchema, Wild, cached
from t87s.primitives import create_primitives

from cachekit_shm import AsyncClient, Client
from cachekit_shm.t87s import CachekitAdapter, tag_path


@dataclasses.dataclass(frozen=True)
class Row:
    id: int
    tags: frozenset


class CommentTags(TagSchema):
    pass


class PostTags(TagSchema):
    comments: Wild[CommentTags]
    meta: Static


class BlogTags(TagSchema):
    posts: Wild[PostTags]
    site: Static


@pytest.fixture
async def adapter(cachekitd_socket, namespace):
    a = CachekitAdapter(socket=cachekitd_socket, namespace=namespace)
    yield a
    await a.disconnect()


def test_tag_paths_are_one_to_one() -> None:
    assert tag_path(("posts", "1", "comments")) == "posts/1/comments"
    assert tag_path(("a/b",)) == "a%2Fb" != tag_path(("a", "b"))
    assert tag_path(("a%2Fb",)) == "a%252Fb" != tag_path(("a/b",))
    assert tag_path(("a", "")) == "a/%00" != tag_path(("a", "%00"))
    assert tag_path(("posts", 1)) == "posts/1"
    assert tag_path(tuple("abcdefghij")) == "a/b/c/d/e/f/g/h"  # cachekitd's 8 segments


async def test_any_picklable_value_round_trips(adapter) -> None:
    now = int(time.time() * 1000)
    for value in (None, b"\x00bytes", {1, 2}, Row(1, frozenset({"x"})), [{"nested": (1, 2.5)}]):
        entry = CacheEntry(value=value, tags=[Tag(("rows", "1"))], created_at=now, expires_at=now + 60_000,
                           grace_until=None)
        await adapter.set("k", entry)
        got = await adapter.get("k")
        assert got == entry
        assert got.tags == [("rows", "1")]


async def test_the_entry_lives_until_grace_until(adapter) -> None:
    now = int(time.time() * 1000)
    await adapter.set("k", CacheEntry(value=1, tags=[], created_at=now, expires_at=now + 10_000,
                                      grace_until=now + 40_000))
    info = adapter.client.sync.get_with_info(b"e:k")[1]
    assert 39_000 <= info.expires_ms - now <= 40_500


async def test_typed_schema_invalidation_is_cachekit_hierarchical_invalidation(adapter) -> None:
    fetches = []

    class Blog(QueryCache[BlogTags]):
        @cached(BlogTags.posts().comments())
        async def comment(self, post: str, comment: str) -> str:
            fetches.append((post, comment))
            return f"{post}/{comment}"

    blog = Blog(adapter=adapter)
    assert await blog.comment("p1", "c1") == "p1/c1"
    assert await blog.comment("p2", "c1") == "p2/c1"
    keys = adapter.client.sync.scan_iter(tag="posts/p1/comments/c1")
    assert len(list(keys)) == 1  # the entry carries the schema path as a cachekitd tag
    await blog.invalidate(blog.t.posts("p1"))  # a parent of the comment's tag
    assert await blog.comment("p1", "c1") == "p1/c1"
    assert await blog.comment("p2", "c1") == "p2/c1"
    assert fetches == [("p1", "c1"), ("p2", "c1"), ("p1", "c1")]


async def test_an_invalidation_holds_without_its_time_record(adapter) -> None:
    p = create_primitives(adapter=adapter, default_ttl="1h")
    await p.set("k", "old", tags=[("users", "1")], ttl="1h")
    await p.invalidate([("users",)])
    # The time record is an ordinary entry: lose it (as eviction could).
    assert adapter.client.sync.delete(b"t:users")
    assert await adapter.get_tag_invalidation_time(Tag(("users",))) is None
    assert await p.get("k") is None  # still invalidated: cachekitd dropped the entry itself
    assert await adapter.get("t87s:k") is None


async def test_a_hit_makes_no_request_to_the_daemon(adapter) -> None:
    p = create_primitives(adapter=adapter, default_ttl="1h", verify_percent=0)
    tags = [("posts", "1", "comments", "2"), ("users", "7"), ("site",)]
    await p.query(key="k", tags=tags, fn=_value, ttl="1h")
    await p.invalidate([("other",)])
    sync = adapter.client.sync
    before = sync.stats()["daemon.requests"]
    idle = sync.stats()["daemon.requests"] - before  # what a stats call itself costs
    before = sync.stats()["daemon.requests"]
    for _ in range(200):
        assert await p.query(key="k", tags=tags, fn=_value, ttl="1h") == "v"
    assert sync.stats()["daemon.requests"] - before == idle


async def _value() -> str:
    return "v"


async def test_too_many_tags_are_not_cached(adapter, caplog) -> None:
    p = create_primitives(adapter=adapter, default_ttl="1h")
    tags = [("t", str(i)) for i in range(9)]
    with caplog.at_level(logging.WARNING, "cachekit_shm"):
        await p.set("k", "v", tags=tags, ttl="1h")
    assert "more than 8 distinct tags" in caplog.text
    assert await p.get("k") is None


async def test_clear_drops_entries_and_tag_times(adapter) -> None:
    p = create_primitives(adapter=adapter, default_ttl="1h")
    await p.set("k", "v", tags=[], ttl="1h")
    await adapter.set_tag_invalidation_time(Tag(("a",)), 5)
    await p.clear()
    assert await p.get("k") is None
    assert await adapter.get_tag_invalidation_time(Tag(("a",))) is None


async def test_given_client_stays_open(cachekitd_socket, namespace) -> None:
    with Client(socket=cachekitd_socket, namespace=namespace) as c:
        a = CachekitAdapter(c)
        await a.disconnect()
        assert not c.closed
    with pytest.raises(ValueError, match="pickle"):
        CachekitAdapter(Client(socket=cachekitd_socket, namespace=namespace, serializer="json"))
    with pytest.raises(TypeError):
        CachekitAdapter(AsyncClient(socket=cachekitd_socket, namespace=namespace), namespace="x")


async def test_hit_time_beside_the_memory_adapter(adapter, capsys) -> None:
    """Not a timing assertion: prints a t87s hit through each adapter (the note's figures)."""
    tags = [("posts", "1", "comments", "2"), ("users", "7")]
    figures = {}
    for name, a in (("memory", AsyncMemoryAdapter()), ("cachekit", adapter)):
        p = create_primitives(adapter=a, default_ttl="1h", verify_percent=0)
        await p.query(key="k", tags=tags, fn=_value, ttl="1h")
        n = 2000
        t0 = time.perf_counter()
        for _ in range(n):
            await p.query(key="k", tags=tags, fn=_value, ttl="1h")
        figures[name] = (time.perf_counter() - t0) / n * 1e6
    with capsys.disabled():
        print(f"\nt87s hit, 2 tags (6 tag-time reads): memory adapter {figures['memory']:.1f} us, "
              f"CachekitAdapter {figures['cachekit']:.1f} us")

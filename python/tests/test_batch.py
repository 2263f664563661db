"""set_many and delete_many against a real cachekitd: one request per batch of up to 1000
items, every item tried, the first failure raised after the others were stored."""

import os

import pytest

from cachekit_shm import AsyncClient
from cachekit_shm.errors import InvalidArgumentError, TooLargeError


def _requests(client):
    return client.stats()["client.requests"]


def test_set_many_is_one_request_per_thousand_items(client):
    items = {f"k{i}": i * 1.5 for i in range(2345)}
    before = _requests(client)
    client.set_many(items)
    # 3 SET_MANY requests; the second STATS counts itself.
    assert _requests(client) - before == 4
    assert client.get("k0") == 0.0 and client.get("k2344") == 2344 * 1.5
    before = _requests(client)
    assert client.delete_many(items) == 2345
    assert _requests(client) - before == 4
    assert client.get("k7") is None
    assert client.delete_many(["k7", "never"]) == 0
    assert client.delete_many([]) == 0
    client.set_many({})


def test_a_bad_item_fails_alone_and_raises_after_the_others(client):
    with pytest.raises(TooLargeError, match="max_value_bytes"):
        client.set_many([("ok1", b"a"), ("big", os.urandom(2 << 20)), ("ok2", b"b")])
    assert client.get("ok1") == b"a" and client.get("ok2") == b"b"
    assert client.get("big") is None
    # A bad tag concerns the whole batch: nothing stored.
    with pytest.raises(InvalidArgumentError):
        client.set_many({"t1": 1.0}, tags=["a//b"])
    assert client.get("t1") is None


def test_ints_are_counters_in_a_batch_too(client):
    client.set_many({"n": 5, "s": "text"})
    assert client.incr("n", 2) == 7
    assert client.get("s") == "text"


def test_a_key_given_twice_ends_with_its_later_value_counter_or_not(client):
    # Ints go as counters, a request each, in their place among the others.
    client.set_many([("a", 1), ("a", b"later"), ("b", b"first"), ("b", 2)])
    assert client.get("a") == b"later"
    assert client.get("b") == 2 and client.incr("b") == 3


def test_async_delete_many(client, cachekitd_socket, namespace):
    import asyncio

    async def main():
        a = AsyncClient.from_client(client)
        await a.set_many({"x": 1.0, "y": 2.0})
        assert await a.delete_many(["x", "y", "z"]) == 2

    asyncio.run(main())
    assert client.get("x") is None

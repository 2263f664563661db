"""@cached: sync and async functions, keys from arguments, tag callables, the invalidate
helpers, stale-while-revalidate, the default client, and a cache that is down."""

from __future__ import annotations

import asyncio
import threading

import pytest
from _helpers import wait_until

from cachekit_shm import AsyncClient, Client, cached, set_default_client
from cachekit_shm.decorator import key_digest


@pytest.fixture
def calls():
    return []


def test_results_are_cached_per_arguments(client, calls):
    @cached(ttl=60, client=client)
    def add(x, y=2):
        calls.append((x, y))
        return x + y

    assert add(1) == 3
    assert add(1) == 3
    assert add(x=1) == 3  # bound to the signature: one entry
    assert add(1, 2) == 3  # defaults applied: one entry
    assert add(1, y=3) == 4
    assert calls == [(1, 2), (1, 3)]
    assert add.cache_key(1) == add.cache_key(x=1, y=2)
    assert add.cache_key(1).startswith(f"{__name__}.test_results_are_cached_per_arguments.<locals>.add:")
    assert add.__name__ == "add" and add.__wrapped__ is not None


def test_none_is_cached_too(client, calls):
    @cached(client=client)
    def nothing():
        calls.append(1)

    assert nothing() is None and nothing() is None
    assert calls == [1]


def test_invalidate_one_call_and_all_calls(client, calls):
    @cached(client=client)
    def sq(x):
        calls.append(x)
        return x * x

    @cached(client=client)
    def cube(x):
        calls.append(("cube", x))
        return x ** 3

    sq(2), sq(3), cube(2)
    assert sq.invalidate(2) is True
    assert sq.invalidate(2) is False
    sq(2), sq(3)
    assert calls == [2, 3, ("cube", 2), 2]
    sq.invalidate_all()
    sq(2), sq(3), cube(2)
    assert calls == [2, 3, ("cube", 2), 2, 2, 3]  # cube's entry survived
    assert sq.cache_tag.startswith("cachekit_shm.cached/")


def test_tag_callables(client, calls):
    @cached(client=client, tags=["static", lambda user_id, page=1: ("users", user_id),
                                 lambda user_id, page=1: [f"pages/{page}", ("both", user_id, page)],
                                 lambda user_id, page=1: None])
    def render(user_id, page=1):
        calls.append((user_id, page))
        return f"{user_id}:{page}"

    render(1), render(2), render(1, page=2)
    client.invalidate(("users", 1))
    render(1), render(2), render(1, page=2)
    assert calls == [(1, 1), (2, 1), (1, 2), (1, 1), (1, 2)]
    client.invalidate("pages/1")
    render(1), render(2)
    assert calls[-2:] == [(1, 1), (2, 1)]
    client.invalidate("static")
    render(2)
    assert calls[-1] == (2, 1)


def test_bad_static_tags_fail_when_decorating():
    with pytest.raises(TypeError):
        cached(tags=[42])


def test_custom_key(client, calls):
    @cached(client=client, key=lambda user, **_: f"user-{user['id']}")
    def greet(user, punctuation="!"):
        calls.append(user["id"])
        return f"hi {user['name']}{punctuation}"

    assert greet({"id": 7, "name": "Ada"}) == "hi Ada!"
    assert greet({"id": 7, "name": "renamed"}) == "hi Ada!"  # the key ignores the name
    assert greet.cache_key({"id": 7}) == f"{greet.__module__}.{greet.__qualname__}:user-7"
    assert calls == [7]


def test_namespace_option(client, cachekitd_socket, calls):
    @cached(client=client, namespace=client.namespace + "-fn")
    def f():
        calls.append(1)
        return "x"

    f()
    f()
    assert calls == [1]
    assert client.get(f.cache_key()) is None  # stored in the other namespace
    with Client(socket=cachekitd_socket, namespace=client.namespace + "-fn") as other:
        assert other.get(f.cache_key()) == "x"


def test_default_client_from_the_environment(cachekitd_socket, namespace, monkeypatch, calls):
    monkeypatch.setenv("CACHEKIT_SOCKET", cachekitd_socket)
    monkeypatch.setenv("CACHEKIT_NAMESPACE", namespace)
    set_default_client(None)
    try:
        @cached(ttl=60)
        def f(x):
            calls.append(x)
            return x

        f(1), f(1)
        assert calls == [1]
        with Client(socket=cachekitd_socket, namespace=namespace) as c:
            assert c.get(f.cache_key(1)) == 1
    finally:
        set_default_client(None)


def test_a_cache_that_is_down_never_breaks_the_function(tmp_path, calls):
    down = Client(socket=str(tmp_path / "none.sock"), lazy=True)

    @cached(client=down, ttl=60)
    def f(x):
        calls.append(x)
        return x * 2

    assert f(2) == 4 and f(2) == 4
    assert calls == [2, 2]
    down.close()


def test_unkeyable_arguments_ask_for_key(client):
    @cached(client=client)
    def f(lock):
        return 1

    with pytest.raises(TypeError, match="key="):
        f(threading.Lock())


def test_stale_while_revalidate(client):
    version = {"n": 0}
    refreshed = threading.Event()

    @cached(client=client, ttl=0.05, grace=60)
    def slow():
        version["n"] += 1
        if version["n"] > 1:
            refreshed.set()
        return version["n"]

    assert slow() == 1
    wait_until(lambda: client.get_with_info(slow.cache_key())[1].stale, what="the entry to go stale")
    assert slow() == 1  # served stale at once; a refresh starts in the background
    assert refreshed.wait(30)
    wait_until(lambda: slow() == 2, what="the refreshed value")


def test_canonical_keys():
    assert key_digest({"a": 1, "b": {3, 2, 1}}) == key_digest({"b": {1, 2, 3}, "a": 1})
    distinct = [1, 1.0, True, "1", b"1", (1,), [1], {1}, frozenset({1}), None, 0, "", ()]
    assert len({key_digest(v) for v in distinct}) == len(distinct)
    assert key_digest(("a", "b")) != key_digest(("ab",))
    # Pinned: a change to the encoding would orphan every entry written by an older version.
    assert key_digest((1, "a", b"b", 2.5, None, True, {"k": [1, 2]})) == "dda43295600df5e331e8c43f6bc2777b"


# ---- async functions -----------------------------------------------------------------------------


async def test_async_function(cachekitd_socket, namespace, calls):
    aclient = AsyncClient(socket=cachekitd_socket, namespace=namespace)

    @cached(client=aclient, ttl=60, tags=[lambda x: ("nums", x)])
    async def double(x):
        calls.append(x)
        await asyncio.sleep(0)
        return 2 * x

    assert await double(2) == 4
    assert await double(2) == 4
    assert await double(x=2) == 4
    assert calls == [2]
    assert await double.invalidate(2) is True
    assert await double(2) == 4
    await aclient.invalidate(("nums", 2))
    assert await double(2) == 4
    await double.invalidate_all()
    assert await double(2) == 4
    assert calls == [2, 2, 2, 2]
    aclient.close()


async def test_async_function_with_a_sync_client(client, calls):
    @cached(client=client)
    async def f(x):
        calls.append(x)
        return x

    assert await f(1) == 1 and await f(1) == 1
    assert calls == [1]
    assert client.get(f.cache_key(1)) == 1


async def test_async_stale_while_revalidate(client):
    n = {"v": 0}

    @cached(client=client, ttl=0.05, grace=60)
    async def f():
        n["v"] += 1
        return n["v"]

    assert await f() == 1
    wait_until(lambda: client.get_with_info(f.cache_key())[1].stale, what="the entry to go stale")
    assert await f() == 1
    for _ in range(3000):
        if await f() == 2:
            break
        await asyncio.sleep(0.01)
    assert await f() == 2

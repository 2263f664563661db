"""Fork safety: a client opened before fork() (gunicorn --preload) keeps working in the child,
with a handle of its own, while the parent goes on with its own."""

from __future__ import annotations

import asyncio
import os
import pickle
import sys
import traceback

import pytest

from cachekit_shm import AsyncClient, Client, ClosedError

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

WATCHDOG_S = 60


def in_child(fn) -> object:
    """Runs `fn` in a forked child; returns what it returned, re-raises what it raised."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(r)
        try:
            result = ("ok", fn())
        except BaseException as e:  # noqa: BLE001 - sent to the parent
            result = ("err", f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        try:
            os.write(w, pickle.dumps(result))
        finally:
            os._exit(0)
    os.close(w)
    import select

    chunks = []
    while True:
        ready, _, _ = select.select([r], [], [], WATCHDOG_S)
        if not ready:
            os.kill(pid, 9)
            raise AssertionError("the child did not finish in time")
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "err":
        raise AssertionError(f"in the child: {value}")
    return value


def test_client_opened_before_fork_works_in_the_child(client):
    client.set("from-parent", "p")
    parent_handle = client._ptr

    def child():
        assert client._ptr is None  # the inherited handle was dropped at fork
        got = client.get("from-parent")
        client.set("from-child", os.getpid())
        assert client._ptr is not None and client._pid == os.getpid()
        return got

    assert in_child(child) == "p"
    assert client._ptr is parent_handle  # the parent's handle is untouched
    assert isinstance(client.get("from-child"), int)
    client.set("parent-again", 1)
    assert client.get("parent-again") == 1


def test_parent_and_children_talk_to_the_daemon_at_once(client):
    """After fork, parent and children must not share daemon connections: interleaved requests
    on one socket would mix up replies."""
    client.set("warm", 1)  # the pool holds a connection before the fork
    pids = []
    for i in range(3):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for j in range(300):
                    client.set(f"c{i}-{j % 7}", (i, j))
                    assert client.get(f"c{i}-{j % 7}") == (i, j)
                    assert client.delete(f"nothing-{i}") is False
                code = 0
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    for j in range(300):
        client.set(f"p-{j % 7}", j)
        assert client.get(f"p-{j % 7}") == j
        assert client.stats()  # a larger reply, to catch any crossed stream
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


def test_namespaced_and_async_clients_after_fork(cachekitd_socket, namespace):
    base = Client(socket=cachekitd_socket, namespace=namespace)
    other = base.with_namespace(namespace + "-b")
    aio = AsyncClient(socket=cachekitd_socket, namespace=namespace + "-c")
    other.set("k", "b")

    async def use_async():
        await aio.set("k", "c")  # the thread pool is made again in the child
        return await aio.get("k")

    def child():
        return other.get("k"), asyncio.run(use_async())

    assert in_child(child) == ("b", "c")
    assert other.get("k") == "b"
    for c in (base, other, aio):
        c.close()


def test_closed_client_stays_closed_in_the_child(cachekitd_socket, namespace):
    c = Client(socket=cachekitd_socket, namespace=namespace)
    c.close()

    def child():
        try:
            c.get("k")
        except ClosedError:
            return "closed"
        return "open"

    assert in_child(child) == "closed"


def test_fork_that_bypasses_the_hook_is_caught_by_the_pid_check(client):
    # A fork made from C (no os.register_at_fork hooks): the handle's pid differs, and every
    # method that talks to the daemon opens a new handle first.
    client.set("k", 1)
    old = client._ptr
    client._pid = -1
    client.set("k", 2)
    assert client._ptr is not old and client._pid == os.getpid()
    assert client.get("k") == 2

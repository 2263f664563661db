"""Every error path: no daemon, a daemon that dies or restarts, one that does not answer, one
that refuses writes; and what each exception carries."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from _helpers import wait_until

from cachekit_shm import (
    CachekitError,
    CachekitTimeoutError,
    Client,
    InvalidArgumentError,
    NotPermittedError,
    TooLargeError,
    UnavailableError,
)


def test_open_without_a_daemon_says_how_to_start_it(tmp_path):
    sock = str(tmp_path / "nobody.sock")
    with pytest.raises(UnavailableError) as e:
        Client(socket=sock)
    assert sock in str(e.value) and "cachekitd" in str(e.value)
    assert e.value.code_name == "CACHEKIT_UNAVAILABLE"
    assert isinstance(e.value, ConnectionError) and isinstance(e.value, CachekitError)


def test_unknown_instance_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("CACHEKIT_DIR", str(tmp_path))
    with pytest.raises(UnavailableError):
        Client(instance="no-such-instance")


def test_lazy_client_without_a_daemon_misses_and_refuses_writes(tmp_path):
    with Client(socket=str(tmp_path / "later.sock"), lazy=True) as c:
        assert c.get("k") is None
        assert c.get("k", "default") == "default"
        assert c.get_raw("k") is None
        assert c.get_with_info("k") is None
        assert c.get_many(["a", "b"]) == {}
        for write in (lambda: c.set("k", 1), lambda: c.set_raw("k", b"1"), lambda: c.delete("k"),
                      lambda: c.set_many({"k": 1}), lambda: c.invalidate("t"), lambda: c.clear(),
                      lambda: c.ping(), lambda: c.stats()):
            with pytest.raises(UnavailableError):
                write()


def test_lazy_client_starts_working_when_the_daemon_comes_up(make_daemon, tmp_path):
    d = make_daemon()
    sock = d.socket
    d.stop()
    with Client(socket=sock, lazy=True) as c:
        with pytest.raises(UnavailableError):
            c.set("k", 1)
        d.start()
        wait_until(lambda: _set_ok(c, "k", 1), what="the client to reach the new daemon")
        assert c.get("k") == 1


def _set_ok(c: Client, key: str, value: object) -> bool:
    try:
        c.set(key, value)
        return True
    except (UnavailableError, CachekitTimeoutError):
        return False


def test_daemon_dies_then_restarts(make_daemon):
    d = make_daemon()
    with Client(socket=d.socket, namespace="app") as c:
        c.set("k", "before")
        assert c.get("k") == "before"
        d.kill()
        # Down: gets miss (a dead daemon's segment is not read), writes raise.
        wait_until(lambda: c.get("k") is None, what="gets to miss once the daemon is gone")
        assert c.get("k", "default") == "default"
        with pytest.raises(UnavailableError):
            c.set("k", "during")
        with pytest.raises(UnavailableError):
            c.ping()
        # Back (a new daemon: a fresh, empty table): the same client re-attaches by itself.
        d.start()
        wait_until(lambda: _set_ok(c, "k", "after"), what="the client to re-attach")
        assert c.get("k") == "after"
        _, info = c.get_with_info("k")
        assert info.source == "segment"


def _silent_socket(path: str) -> threading.Thread:
    """A Unix socket that accepts connections and never answers (a stuck daemon)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    held = []

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            held.append(conn)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    t.srv = srv  # type: ignore[attr-defined]
    return t


def test_a_daemon_that_does_not_answer_times_out(tmp_path):
    sock = str(tmp_path / "stuck.sock")
    t = _silent_socket(sock)
    try:
        with pytest.raises(CachekitTimeoutError) as e:
            Client(socket=sock, connect_timeout=0.2)
        assert isinstance(e.value, TimeoutError)
        assert e.value.code_name == "CACHEKIT_TIMEOUT"
        with Client(socket=sock, lazy=True, connect_timeout=0.2, request_timeout=0.2) as c:
            with pytest.raises(CachekitTimeoutError):
                c.set("k", 1)
            assert c.get("k", "miss") == "miss"  # gets never raise for an unreachable daemon
    finally:
        t.srv.close()  # type: ignore[attr-defined]


def test_frozen_daemon_times_out_writes(make_daemon):
    d = make_daemon()
    with Client(socket=d.socket, request_timeout=0.3) as c:
        c.set("k", 1)
        d.freeze()
        try:
            with pytest.raises(CachekitTimeoutError):
                c.set("k", 2)
        finally:
            d.thaw()
        wait_until(lambda: _set_ok(c, "k", 3), what="writes to work again")
        assert c.get("k") == 3


def test_writes_refused_to_other_users(make_daemon):
    if os.getuid() == 4242 or os.getgid() == 4242:
        pytest.skip("the test's writer uid/gid is ours")
    d = make_daemon("--writer-uids", "4242", "--writer-gids", "4242")
    with Client(socket=d.socket) as c:
        with pytest.raises(NotPermittedError) as e:
            c.set("k", 1)
        assert isinstance(e.value, PermissionError)
        assert e.value.code_name == "CACHEKIT_NOT_PERMITTED"
        assert c.get("k") is None  # reading stays allowed


def test_exception_classes():
    assert issubclass(TooLargeError, ValueError)
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(CachekitTimeoutError, TimeoutError)
    for cls in (TooLargeError, InvalidArgumentError, CachekitTimeoutError, NotPermittedError, UnavailableError):
        assert issubclass(cls, CachekitError)
        e = cls("message", 5, "CACHEKIT_X")
        assert str(e) == "message" and e.code == 5


def test_errors_pickle_across_processes():
    import pickle

    e = pickle.loads(pickle.dumps(UnavailableError("down", 6, "CACHEKIT_UNAVAILABLE")))
    assert isinstance(e, UnavailableError) and e.code == 6 and str(e) == "down"

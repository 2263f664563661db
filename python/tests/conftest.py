"""Fixtures shared by every Python test: real cachekitd daemons in temp dirs.

``cachekitd_socket`` (session): one daemon for the whole run, under an instance of its own in
its own temp dir; the path of its socket. Tests keep apart by namespace (``namespace``).
``make_daemon`` (per test): more daemons that a test may stop, freeze and restart.

The daemon binary is ``$CACHEKITD_BIN`` (scripts/test-python builds it and sets it), else
target/{ci,release,debug}/cachekitd in the repository.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20


def _daemon_bin() -> str:
    given = os.environ.get("CACHEKITD_BIN")
    if given:
        if not os.access(given, os.X_OK):
            raise RuntimeError(f"CACHEKITD_BIN={given} is not an executable")
        return given
    for profile in ("ci", "release", "debug"):
        candidate = REPO / "target" / profile / "cachekitd"
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("no cachekitd: set CACHEKITD_BIN or run scripts/test-python (it builds one)")


def _thread_stopped(task: str) -> bool:
    """Whether the thread at /proc/PID/task/TID is stopped (state T) or gone."""
    try:
        with open(os.path.join(task, "stat")) as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "Tt"


class Daemon:
    """One cachekitd process in a directory of its own (``--dir``), under ``--instance``."""

    def __init__(self, directory: str, instance: str, args: List[str]) -> None:
        self.dir = directory
        self.instance = instance
        self.args = args
        self.socket = os.path.join(directory, f"{instance}.sock")
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = os.path.join(directory, f"{instance}.log")

    def start(self) -> "Daemon":
        env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEKIT_") and k != "NOTIFY_SOCKET"}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [_daemon_bin(), "--dir", self.dir, "--instance", self.instance, "--log", "warn", *self.args],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"cachekitd did not start:\n{self.log()}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """SIGTERM and wait (a clean stop)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def freeze(self) -> None:
        """SIGSTOP, and wait until every thread of the daemon has stopped: the signal stops
        one thread first and the others after, so without waiting a running thread could
        still answer a request sent right after the kill."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        task_dir = f"/proc/{self.proc.pid}/task"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(_thread_stopped(os.path.join(task_dir, t)) for t in os.listdir(task_dir)):
            if time.monotonic() > deadline:
                raise RuntimeError("cachekitd did not stop after SIGSTOP")
            time.sleep(0.001)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture(scope="session")
def cachekitd_socket() -> Iterator[str]:
    """The socket path of a cachekitd shared by the whole session."""
    tmp = tempfile.mkdtemp(prefix="cachekit-pytest.")
    d = Daemon(tmp, f"pytest-{os.getpid()}", []).start()
    try:
        yield d.socket
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def make_daemon() -> Iterator[Callable[..., Daemon]]:
    """``make_daemon(*extra_args)``: a started daemon of the test's own, stopped afterwards."""
    made: List[Daemon] = []
    dirs: List[str] = []

    def make(*args: str) -> Daemon:
        tmp = tempfile.mkdtemp(prefix="cachekit-pytest.")
        dirs.append(tmp)
        d = Daemon(tmp, f"t{uuid.uuid4().hex[:8]}", list(args)).start()
        made.append(d)
        return d

    try:
        yield make
    finally:
        for d in made:
            d.stop()
        for tmp in dirs:
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def namespace() -> str:
    """A namespace of the test's own, so tests sharing the session daemon never meet."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(cachekitd_socket: str, namespace: str):
    from cachekit_shm import Client

    with Client(socket=cachekitd_socket, namespace=namespace) as c:
        yield c


@pytest.fixture
def raw_client(cachekitd_socket: str, namespace: str):
    from cachekit_shm import Client

    with Client(socket=cachekitd_socket, namespace=namespace, serializer=None) as c:
        yield c

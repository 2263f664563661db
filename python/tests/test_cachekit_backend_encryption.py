"""The cachekit PyPI package's backend (CachekitShmBackend) over an encrypting cachekit_shm
client: cachekit stores its bytes as before, unchanged, and cachekitd holds only ciphertext.
With ``@cache.secure`` on top, values are encrypted twice (by cachekit, then by the client)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import uuid

import pytest
from cachekit import cache
from cachekit.config.nested import L1CacheConfig

from cachekit_shm import Client, EncryptedValueError
from cachekit_shm.cachekit_backend import CachekitShmBackend

WATCHDOG_S = 60
NO_L1 = L1CacheConfig(enabled=False)
KEY = bytes(range(32))


@pytest.fixture
def namespace():
    return f"cke-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def backend(cachekitd_socket, namespace):
    with CachekitShmBackend(socket=str(cachekitd_socket), namespace=namespace, encryption_key=KEY) as b:
        yield b
        b.client.clear()


def _written_keys(backend, monkeypatch):
    keys = []
    set_ = backend.set

    def recording_set(key, *args, **kwargs):
        keys.append(key)
        return set_(key, *args, **kwargs)

    monkeypatch.setattr(backend, "set", recording_set)
    return keys


def test_cache_round_trips_and_the_daemon_holds_ciphertext(backend, cachekitd_socket, namespace, monkeypatch):
    assert backend.client.encrypted
    keys = _written_keys(backend, monkeypatch)
    calls = []

    @cache(backend=backend, ttl=60, l1=NO_L1)
    def profile(user):
        calls.append(user)
        return {"user": user, "bio": "x" * 3000}

    assert profile("ada") == {"user": "ada", "bio": "x" * 3000}
    assert profile("ada") == {"user": "ada", "bio": "x" * 3000}
    assert calls == ["ada"]
    (key,) = keys
    frame = backend.get(key)
    assert frame  # cachekit's own bytes, decrypted by the client
    with Client(socket=str(cachekitd_socket), namespace=namespace, serializer=None) as keyless:
        with pytest.raises(EncryptedValueError):
            keyless.get_raw(key)
    # Host-wide invalidation (track_key / drain_tracked re-write the decrypted value).
    profile.invalidate_cache()
    assert profile("ada")["user"] == "ada" and calls == ["ada", "ada"]


def test_cache_secure_on_top_is_encrypted_twice(backend, monkeypatch):
    keys = _written_keys(backend, monkeypatch)
    secret = "the answer is forty-two"

    @cache.secure(master_key="ab" * 32, backend=backend, ttl=60, l1=NO_L1)
    def confidential():
        return secret

    assert confidential() == secret
    assert confidential() == secret
    (key,) = keys
    stored = backend.get(key)  # cachekit's ciphertext, after the client's layer came off
    assert stored and secret.encode() not in stored


def test_swr_and_ttl_paths(backend):
    backend.set("k", b"v", ttl=60, stale_ttl=30)
    value, stale, fresh_for = backend.get_with_freshness("k")
    assert value == b"v" and not stale and 0 < fresh_for <= 60
    assert backend.exists("k") and backend.delete("k") and not backend.exists("k")


def _read_in_child(socket, namespace, key, queue):
    with CachekitShmBackend(socket=socket, namespace=namespace, encryption_key=KEY) as b:
        queue.put(b.get(key))


def test_another_process_with_the_key_reads_it(backend, cachekitd_socket, namespace):
    backend.set("shared", b"\x00frame\xff" * 100)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_read_in_child, args=(str(cachekitd_socket), namespace, "shared", queue))
    p.start()
    try:
        assert queue.get(timeout=WATCHDOG_S) == b"\x00frame\xff" * 100
    finally:
        p.join(WATCHDOG_S)
    assert p.exitcode == 0


def test_one_cachekit_master_key_in_the_environment_serves_both(cachekitd_socket, namespace):
    # cachekit reads CACHEKIT_MASTER_KEY (hex) for @cache.secure, and so does cachekit_shm's
    # client: a 32-byte key in the environment encrypts at both layers, and a reader without
    # it is refused by the client layer.
    child = textwrap.dedent("""
        import sys
        from cachekit import cache
        from cachekit.config.nested import L1CacheConfig
        from cachekit_shm.cachekit_backend import CachekitShmBackend
        b = CachekitShmBackend(socket=sys.argv[1], namespace=sys.argv[2])
        assert b.client.encrypted
        @cache.secure(backend=b, ttl=60, l1=L1CacheConfig(enabled=False))
        def f():
            return "both layers"
        assert f() == "both layers" and f() == "both layers"
        print(b.client.scan_iter().__next__().key.decode())
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEKIT_")}
    env["CACHEKIT_MASTER_KEY"] = KEY.hex()
    out = subprocess.run([sys.executable, "-c", child, str(cachekitd_socket), namespace], env=env,
                         capture_output=True, text=True, timeout=WATCHDOG_S)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    with Client(socket=str(cachekitd_socket), namespace=namespace, serializer=None) as keyless:
        with pytest.raises(EncryptedValueError):
            keyless.get_raw(key)
    with Client(socket=str(cachekitd_socket), namespace=namespace, serializer=None, encryption_key=KEY) as keyed:
        frame = keyed.get_raw(key)
        assert frame and b"both layers" not in frame
        keyed.clear()

"""Client-side encryption from Python (issue 14) against a real cachekitd: every serializer and
read path through an encrypting client, the three errors (DecryptError, EncryptedValueError,
PlaintextValueError), tenants, rotation, hashed keys, the environment's key (in child
processes), ``@cached(secure=True)``, and the marker test: a value set through an encrypting
client is nowhere in the daemon's memory, and is there without encryption."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import subprocess
import sys
import textwrap
import uuid

import pytest

from cachekit_shm import (
    AsyncClient,
    CachekitError,
    Client,
    DecryptError,
    EncryptedValueError,
    InvalidArgumentError,
    PlaintextValueError,
    cached,
    set_default_client,
)

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
K3 = bytes(range(200, 232))
SIZES = [0, 1, 100, 4096, 65536, 1 << 20]


def payload(size: int, compressible: bool) -> bytes:
    if compressible:
        return (b"cachekit-" * (size // 9 + 1))[:size]
    return os.urandom(size)


@pytest.fixture
def make(cachekitd_socket, namespace):
    """``make(**kwargs)``: a Client on the session daemon in the test's namespace."""
    made = []

    def make(**kwargs):
        kwargs.setdefault("namespace", namespace)
        c = Client(socket=cachekitd_socket, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


# -- round trips ------------------------------------------------------------------------------


def test_bytes_of_every_size_round_trip_and_are_stored_encrypted(make):
    enc = make(serializer=None, encryption_key=K1)
    plain = make(serializer=None)
    assert enc.encrypted and not plain.encrypted
    for size in SIZES:
        for compressible in (True, False):
            key = f"v{size}-{compressible}"
            value = payload(size, compressible)
            enc.set(key, value)
            assert enc.get_raw(key) == value, key
            assert enc.get(key) == value
            hit = enc.get_raw_with_info(key)
            assert hit is not None and hit[0] == value
            assert enc.get_local(key) == value
            assert enc.get_many([key]) == {key: value}
            with pytest.raises(EncryptedValueError):
                plain.get_raw(key)


@pytest.mark.parametrize("serializer", ["pickle", "json", "msgpack", "upper"])
def test_every_serializer_round_trips(make, serializer):
    class Upper:
        name = "upper"

        def dumps(self, value):
            return value.upper().encode()

        def loads(self, data):
            return bytes(data).decode()

    ser = Upper() if serializer == "upper" else serializer
    enc = make(serializer=ser, encryption_key=K1)
    value = "shout " * 700 if serializer == "upper" else {"name": "Ada", "n": [1, 2.5, None], "s": "x" * 5000}
    expected = value.upper() if serializer == "upper" else value
    enc.set("k", value, ttl=60, tags=["t/1"])
    assert enc.get("k") == expected
    assert enc.get_with_info("k")[0] == expected
    assert enc.get_many(["k", "missing"]) == {"k": expected}
    assert enc.get_local("k") == expected
    # Another process-like handle with the key reads it too (a separate native client).
    assert make(serializer=ser, encryption_key=K1).get("k") == expected
    # Tags stay plaintext: invalidation works on encrypted entries.
    enc.invalidate("t/1")
    assert enc.get("k") is None


def test_atomic_writes_and_counters_under_encryption(make):
    enc = make(encryption_key=K1)
    assert enc.add("a", {"v": 1}) is True
    assert enc.add("a", {"v": 2}) is False
    assert enc.get("a") == {"v": 1}
    hit = enc.get_with_info("a")
    assert enc.cas("a", {"v": 3}, hit[1].version) is True
    assert enc.get("a") == {"v": 3}
    assert enc.replace("a", [4]) is True and enc.get("a") == [4]
    assert enc.get_and_delete("a") == [4] and enc.get("a") is None
    # Counters are plaintext by nature (the daemon adds to them): readable without the key.
    assert enc.incr("n", 5) == 5
    assert make().get("n") == 5
    # But an int given to set is a value like any other: sealed, not a plaintext counter.
    enc.set("balance", 1_250_000)
    assert enc.get("balance") == 1_250_000
    with pytest.raises(EncryptedValueError):
        make().get("balance")


def test_async_client_round_trip_and_errors(cachekitd_socket, namespace):
    async def run():
        async with AsyncClient(socket=cachekitd_socket, namespace=namespace, encryption_key=K1) as enc:
            assert enc.encrypted
            await enc.set("k", b"x" * 10000)
            assert await enc.get("k") == b"x" * 10000
            assert await enc.get_many(["k"]) == {"k": b"x" * 10000}
        async with AsyncClient(socket=cachekitd_socket, namespace=namespace) as plain:
            with pytest.raises(EncryptedValueError):
                await plain.get("k")
        async with AsyncClient(socket=cachekitd_socket, namespace=namespace, encryption_key=K2) as wrong:
            with pytest.raises(DecryptError):
                await wrong.get("k")

    asyncio.run(run())


# -- the errors -------------------------------------------------------------------------------


def test_a_client_without_the_key_is_told_how_to_configure_it(make):
    make(encryption_key=K1).set("k", "secret")
    plain = make()
    for read in (plain.get, plain.get_raw, plain.get_local, plain.get_with_info, lambda k: plain.get_many([k])):
        with pytest.raises(EncryptedValueError) as e:
            read("k")
        msg = str(e.value)
        assert "encrypted" in msg and "CACHEKIT_MASTER_KEY" in msg and "encryption_key=" in msg, msg
        assert e.value.code_name == "CACHEKIT_ENCRYPTED" and isinstance(e.value, CachekitError)


def test_a_wrong_key_is_a_decrypt_error_never_garbage_or_a_miss(make):
    make(encryption_key=K1).set("k", "secret")
    wrong = make(encryption_key=K2)
    for read in (wrong.get, wrong.get_raw, wrong.get_local, lambda k: wrong.get_many([k])):
        with pytest.raises(DecryptError) as e:
            read("k")
        assert e.value.code_name == "CACHEKIT_DECRYPT", e.value
    # A plaintext value is accepted by a client with a key (by default).
    make().set("p", "open")
    assert wrong.get("p") == "open"


def test_require_encryption_refuses_plaintext(make):
    make().set("p", "open")
    strict = make(encryption_key=K1, require_encryption=True)
    with pytest.raises(PlaintextValueError) as e:
        strict.get("p")
    assert e.value.code_name == "CACHEKIT_PLAINTEXT" and "require" in str(e.value)
    with pytest.raises(PlaintextValueError):
        strict.get_local("p")
    strict.set("e", "sealed")
    assert strict.get("e") == "sealed"
    make().incr("n")
    assert strict.get("n") == 1  # counters excepted


def test_settings_are_checked(cachekitd_socket):
    with pytest.raises(InvalidArgumentError, match="32 bytes"):
        Client(socket=cachekitd_socket, encryption_key=b"short")
    with pytest.raises(InvalidArgumentError, match="hex digits nor base64"):
        Client(socket=cachekitd_socket, encryption_key="not a key!")
    with pytest.raises(InvalidArgumentError, match=r"previous_keys\[1\]"):
        Client(socket=cachekitd_socket, encryption_key=K1, previous_keys=[K2, b"x"])
    with pytest.raises(InvalidArgumentError, match="tenant given without encryption_key"):
        Client(socket=cachekitd_socket, tenant="acme")
    with pytest.raises(TypeError):
        Client(socket=cachekitd_socket, encryption_key=12)
    # Text forms of one key open a client that reads what the bytes form wrote.
    ns = f"t-{uuid.uuid4().hex[:12]}"
    with Client(socket=cachekitd_socket, namespace=ns, encryption_key=K1) as c:
        c.set("k", 1.5)
    for text in (K1.hex(), K1.hex().upper(), base64.b64encode(K1).decode(),
                 base64.urlsafe_b64encode(K1).decode().rstrip("=") + "\n"):
        with Client(socket=cachekitd_socket, namespace=ns, encryption_key=text) as c:
            assert c.get("k") == 1.5, text


def test_the_memo_of_opened_values(make, cachekitd_socket):
    # The default memo, a sized one and none: repeated hits, then a same-length rewrite seen at once.
    clients = [make(encryption_key=K1, serializer=None),
               make(encryption_key=K1, serializer=None, encryption_memo_bytes=4 << 20),
               make(encryption_key=K1, serializer=None, encryption_memo_bytes=0)]
    clients[0].set("m", b"first value")
    for _ in range(3):
        for c in clients:
            assert c.get_raw("m") == b"first value"
            assert c.get("m") == b"first value"
    clients[2].set("m", b"other value")
    for c in clients:
        assert c.get_raw("m") == b"other value"
    # Another tenant reading the memoised bytes: still a decrypt error.
    with pytest.raises(DecryptError):
        make(encryption_key=K1, tenant="elsewhere", serializer=None).get_raw("m")
    with pytest.raises(InvalidArgumentError, match="encryption_memo_bytes"):
        Client(socket=cachekitd_socket, encryption_key=K1, encryption_memo_bytes=-1)
    with pytest.raises(InvalidArgumentError, match="encryption_memo_bytes given without encryption_key"):
        Client(socket=cachekitd_socket, encryption_memo_bytes=0)
    with pytest.raises(TypeError):
        Client(socket=cachekitd_socket, encryption_key=K1, encryption_memo_bytes="1M")


# -- tenants, rotation, hashed keys -----------------------------------------------------------


def test_two_tenants_on_one_namespace_cannot_read_each_other(make):
    acme = make(encryption_key=K1, tenant="acme")
    globex = make(encryption_key=K1, tenant="globex")
    acme.set("a", "acme's")
    globex.set("g", "globex's")
    assert acme.get("a") == "acme's" and globex.get("g") == "globex's"
    with pytest.raises(DecryptError):
        globex.get("a")
    with pytest.raises(DecryptError):
        acme.get("g")
    # With the default tenant (the namespace), with_namespace derives the other namespace's key.
    base = make(encryption_key=K1)
    other = base.with_namespace(base.namespace + "-b")
    try:
        other.set("k", "b's")
        assert make(namespace=base.namespace + "-b", encryption_key=K1).get("k") == "b's"
        other.clear()
    finally:
        other.close()


def test_rotation_reads_old_values_and_writes_under_the_new_key(make):
    old = make(encryption_key=K1)
    old.set("before", "written under K1")
    rotated = make(encryption_key=K2, previous_keys=[K1])
    assert rotated.get("before") == "written under K1"
    rotated.set("after", "written under K2")
    assert rotated.get("after") == "written under K2"
    with pytest.raises(DecryptError):
        old.get("after")  # new writes use the new key
    assert make(encryption_key=K2).get("after") == "written under K2"
    with pytest.raises(DecryptError):
        make(encryption_key=K2).get("before")  # K1 retired: its values no longer read
    assert make(encryption_key=K3, previous_keys=[K2, K1]).get("before") == "written under K1"


def test_hashed_keys_hide_key_names(make):
    hashed = make(encryption_key=K1, hash_keys=True)
    hashed.set("user:42", "Ada", tags=["users"])
    assert hashed.get("user:42") == "Ada"
    assert make(encryption_key=K1).get("user:42") is None  # not stored under its name
    names = [item.key for item in make(encryption_key=K1).scan_iter()]
    assert len(names) == 1 and re.fullmatch(rb"[0-9a-f]{64}", names[0]), names
    assert hashed.delete("user:42") is True and hashed.get("user:42") is None


def test_a_forked_child_reopens_with_the_key(make):
    enc = make(encryption_key=K1, tenant="acme")
    enc.set("parent", "from the parent")
    pid = os.fork()
    if pid == 0:  # the child: its handle is reopened from the same options (key and tenant)
        code = 1
        try:
            ok = enc.get("parent") == "from the parent"
            enc.set("child", "from the child")
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert enc.get("child") == "from the child"
    with pytest.raises(DecryptError):
        make(encryption_key=K1).get("child")  # written under tenant acme


# -- the environment's key (child processes: the C library reads it at open) ------------------

CHILD = textwrap.dedent("""
    import sys
    from cachekit_shm import Client
    socket, ns, op = sys.argv[1:4]
    try:
        with Client(socket=socket, namespace=ns) as c:
            print("encrypted" if c.encrypted else "plain")
            if op == "set":
                c.set("env", "from the environment")
            else:
                print(repr(c.get("env")))
    except Exception as e:
        print(type(e).__name__, e)
""")


def run_child(cachekitd_socket, namespace, op, **env_vars):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEKIT_")}
    env.update(env_vars)
    out = subprocess.run([sys.executable, "-c", CHILD, cachekitd_socket, namespace, op], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_key_from_the_environment(cachekitd_socket, namespace, make, tmp_path):
    out = run_child(cachekitd_socket, namespace, "set", CACHEKIT_MASTER_KEY=K1.hex())
    assert out == "encrypted\n", out
    assert make(encryption_key=K1).get("env") == "from the environment"
    with pytest.raises(EncryptedValueError):
        make().get("env")
    # A key file: read when private, refused (naming the chmod) when group/other can read it.
    path = tmp_path / "master.key"
    path.write_text(base64.b64encode(K1).decode() + "\n")
    path.chmod(0o600)
    out = run_child(cachekitd_socket, namespace, "get", CACHEKIT_MASTER_KEY_FILE=str(path))
    assert out == "encrypted\n'from the environment'\n", out
    path.chmod(0o644)
    out = run_child(cachekitd_socket, namespace, "get", CACHEKIT_MASTER_KEY_FILE=str(path))
    assert out.startswith("InvalidArgumentError") and f"chmod 600 {path}" in out and "0644" in out, out
    # The environment's tenant and previous keys come along.
    out = run_child(cachekitd_socket, namespace, "get", CACHEKIT_MASTER_KEY=K2.hex(),
                    CACHEKIT_PREVIOUS_MASTER_KEYS=K1.hex())
    assert out == "encrypted\n'from the environment'\n", out
    out = run_child(cachekitd_socket, namespace, "get", CACHEKIT_MASTER_KEY=K1.hex(), CACHEKIT_TENANT="other")
    assert out.startswith("encrypted\nDecryptError"), out
    out = run_child(cachekitd_socket, namespace, "get", CACHEKIT_MASTER_KEY="too short")
    assert "CACHEKIT_MASTER_KEY" in out and "InvalidArgumentError" in out, out


# -- @cached(secure=True) -------------------------------------------------------------------


def test_cached_secure_needs_an_encrypting_client(make):
    plain = make()
    with pytest.raises(InvalidArgumentError, match=r"secure=True.*encryption_key"):
        @cached(client=plain, secure=True)
        def f(x):
            return x

    with pytest.raises(InvalidArgumentError, match="secure=True"):
        cached(client=AsyncClient.from_client(plain), secure=True)(lambda x: x)

    enc = make(encryption_key=K1)
    calls = []

    @cached(client=enc, secure=True, ttl=60)
    def g(x):
        calls.append(x)
        return {"x": x}

    assert g(1) == {"x": 1} and g(1) == {"x": 1} and calls == [1]
    with pytest.raises(EncryptedValueError):
        plain.get(g.cache_key(1))
    # A value that does not decrypt is an error, not a silent recompute.
    wrong = make(encryption_key=K2)

    @cached(client=wrong, secure=True, key=lambda x: str(x))
    def h(x):
        return x

    enc.set(h.cache_key(7), "seven")  # (a plain client's int would be a counter)
    with pytest.raises(DecryptError):
        h(7)


def test_cached_secure_with_the_default_client_checks_at_the_first_call(make):
    @cached(secure=True)
    def f(x):
        return x

    set_default_client(make())
    try:
        with pytest.raises(InvalidArgumentError, match="does not encrypt"):
            f(1)
        set_default_client(make(encryption_key=K1))
        assert f(2) == 2 and f(2) == 2
    finally:
        set_default_client(None)


def test_cached_secure_async(make):
    enc = AsyncClient.from_client(make(encryption_key=K1))

    @cached(client=enc, secure=True)
    async def f(x):
        return [x]

    async def run():
        assert await f(3) == [3]
        assert await f(3) == [3]

    asyncio.run(run())
    with pytest.raises(EncryptedValueError):
        make().get(f.cache_key(3))


# -- the marker test --------------------------------------------------------------------------


def process_memory(pid: int) -> bytes:
    """Every readable mapping of process `pid` (its heap, stacks, and the segment memfd it
    maps), read from /proc/PID/mem. Needs root or ptrace rights over the process (a child)."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] == "[vvar]"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except (OSError, ValueError, OverflowError):
                continue  # a mapping the kernel will not read ([vsyscall], guard pages)
    return b"\0".join(chunks)


@pytest.mark.parametrize("encrypt", [True, False], ids=["encrypted", "plaintext-control"])
def test_the_marker_is_nowhere_in_the_daemons_memory(make_daemon, encrypt):
    daemon = make_daemon()
    marker = b"MARKER-" + uuid.uuid4().hex.encode()
    kwargs = {"encryption_key": K1} if encrypt else {}
    with Client(socket=daemon.socket, namespace="marker", serializer=None, **kwargs) as c:
        c.set("small", marker)
        c.set("compressible", marker * 2000)  # LZ4 before encryption
        c.set("random", os.urandom(30000) + marker + os.urandom(30000))
        c.set_many({f"many{i}": b"%d:" % i + marker for i in range(50)})
        c.set("tagged", marker, ttl=600, tags=["m/1"])
        for key in ("small", "compressible", "random", "tagged"):
            assert c.get_raw(key) is not None, key  # read back: hits through the segment
        found = process_memory(daemon.proc.pid).count(marker)
        assert len(process_memory(daemon.proc.pid)) > 1 << 20  # really read the daemon's memory
    if encrypt:
        assert found == 0, f"the marker is {found} times in cachekitd's memory"
    else:
        assert found >= 50, f"negative control: the marker is only {found} times in cachekitd's memory"

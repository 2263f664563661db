"""CachekitCache with the encryption OPTIONS (ENCRYPTION_KEY, PREVIOUS_KEYS, TENANT, HASH_KEYS,
REQUIRE_ENCRYPTION) against a real cachekitd. Django's own suite also runs once with
ENCRYPTION_KEY set (test_django_suite.py)."""

from __future__ import annotations

import asyncio
import base64

import pytest

from cachekit_shm import Client, DecryptError, EncryptedValueError, PlaintextValueError
from cachekit_shm.errors import InvalidArgumentError

K1 = bytes(range(32))
K2 = bytes(range(100, 132))


def _keyless(cache):
    """A Client on the cache's daemon and namespace with no key."""
    config = dict(cache._config)
    return Client(socket=config["socket"], namespace=config["namespace"], serializer=None)


def test_options_reach_the_client(make_cache):
    cache = make_cache(OPTIONS={"ENCRYPTION_KEY": K1.hex(), "PREVIOUS_KEYS": [K2], "TENANT": "shop",
                                "HASH_KEYS": False, "REQUIRE_ENCRYPTION": True})
    config = dict(cache._config)
    assert config["encryption_key"] == K1.hex() and config["previous_keys"] == (K2,)
    assert config["tenant"] == "shop" and config["require_encryption"] is True
    assert "hash_keys" not in config  # False is the default: not passed
    assert cache._client.encrypted
    assert not make_cache()._client.encrypted


def test_round_trip_and_the_stored_bytes_are_encrypted(make_cache):
    cache = make_cache(OPTIONS={"ENCRYPTION_KEY": base64.b64encode(K1).decode()})
    cache.set("user", {"name": "Ada"}, 60)
    cache.set_tagged("post", ["body"] * 500, 60, tags=("posts/1",))
    cache.set("n", 41)
    assert cache.get("user") == {"name": "Ada"}
    assert cache.get_many(["user", "post"]) == {"user": {"name": "Ada"}, "post": ["body"] * 500}
    assert cache.add("user", "other") is False
    assert cache.incr("n") == 42
    assert cache.touch("user", 120) is True
    cache.incr_version("user")
    assert cache.get("user", version=2) == {"name": "Ada"}
    assert asyncio.run(cache.aget("post")) == ["body"] * 500
    with _keyless(cache) as plain:
        with pytest.raises(EncryptedValueError):
            plain.get_raw(cache.make_key("post"))
        with pytest.raises(EncryptedValueError):
            plain.get_raw(cache.make_key("user", version=2))
    cache.invalidate_tags("posts/1")  # tags stay plaintext: invalidation works
    assert cache.get("post") is None
    lock = cache.lock("job", timeout=10)
    assert lock.acquire(blocking=False) and lock.release() is None


def test_a_wrong_key_or_tenant_fails_to_decrypt(make_cache):
    cache = make_cache(OPTIONS={"ENCRYPTION_KEY": K1})
    ns = dict(cache._config)["namespace"]
    cache.set("k", "v")
    wrong_key = make_cache(OPTIONS={"namespace": ns, "ENCRYPTION_KEY": K2})
    wrong_tenant = make_cache(OPTIONS={"namespace": ns, "ENCRYPTION_KEY": K1, "TENANT": "other"})
    with pytest.raises(DecryptError):
        wrong_key.get("k")
    with pytest.raises(DecryptError):
        wrong_tenant.get("k")


def test_rotation_with_previous_keys(make_cache):
    old = make_cache(OPTIONS={"ENCRYPTION_KEY": K1})
    ns = dict(old._config)["namespace"]
    old.set("before", "K1")
    new = make_cache(OPTIONS={"namespace": ns, "ENCRYPTION_KEY": K2, "PREVIOUS_KEYS": K1.hex()})
    assert new.get("before") == "K1"
    new.set("after", "K2")
    with pytest.raises(DecryptError):
        old.get("after")


def test_require_encryption_and_hashed_keys(make_cache):
    plain = make_cache()
    ns = dict(plain._config)["namespace"]
    plain.set("p", "open")
    strict = make_cache(OPTIONS={"namespace": ns, "ENCRYPTION_KEY": K1, "REQUIRE_ENCRYPTION": True})
    with pytest.raises(PlaintextValueError):
        strict.get("p")
    hashed = make_cache(OPTIONS={"namespace": ns, "ENCRYPTION_KEY": K1, "HASH_KEYS": True})
    hashed.set("secret-name", "v")
    assert hashed.get("secret-name") == "v"
    assert plain.get("secret-name") is None
    assert not any(b"secret-name" in item.key for item in plain._client.scan_iter())
    # A key pattern could match no hashed key and would show key names to the daemon: refused.
    with pytest.raises(InvalidArgumentError, match="hashed"):
        hashed.keys("secret-*")

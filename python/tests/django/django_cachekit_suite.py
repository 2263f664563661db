"""Django's BaseCacheTests, the suite every built-in Django cache backend passes, run against
cachekit_shm.django.CachekitCache and a real cachekitd.

Imported by Django's test runner in a subprocess started by test_django_suite.py, with the
sdist's ``tests/cache`` importable as ``cache`` and these environment variables:
CACHEKIT_DJANGO_SOCKET (the daemon's socket), CACHEKIT_DJANGO_NAMESPACE (a fresh namespace).

Excluded: the ``cull`` and ``zero_cull`` aliases (MAX_ENTRIES 30, CULL_FREQUENCY 3 or 0).
cachekitd does not cull a cache to an entry count by a frequency: its memory is sized on the
daemon, and a full table evicts whole segments, oldest first, with a second chance for
entries read since (FIFO-second-chance). So test_cull, test_zero_cull and
test_cull_delete_when_store_empty skip ("Culling isn't implemented.") as they do for
Django's Redis and memcached backends.

With CACHEKIT_DJANGO_ENCRYPTION_KEY (64 hex digits) set, every cache of the suite has that
ENCRYPTION_KEY, and one more test checks that what the suite stores is encrypted.
"""

import os

from cache.tests import BaseCacheTests, caches_setting_for_tests
from django.core.cache import cache
from django.test import TestCase, override_settings

import cachekit_shm

EXCLUDED_ALIASES = {"cull", "zero_cull"}
OPTIONS = {"namespace": os.environ["CACHEKIT_DJANGO_NAMESPACE"]}
ENCRYPTION_KEY = os.environ.get("CACHEKIT_DJANGO_ENCRYPTION_KEY")
if ENCRYPTION_KEY:
    OPTIONS["ENCRYPTION_KEY"] = ENCRYPTION_KEY


@override_settings(
    CACHES=caches_setting_for_tests(
        BACKEND="cachekit_shm.django.CachekitCache",
        LOCATION=os.environ["CACHEKIT_DJANGO_SOCKET"],
        OPTIONS=OPTIONS,
        exclude=EXCLUDED_ALIASES,
    )
)
class CachekitCacheTests(BaseCacheTests, TestCase):
    def test_cachekit_values_are_encrypted_when_a_key_is_set(self):
        cache.set("cachekit-probe", "plaintext?")
        with cachekit_shm.Client(socket=os.environ["CACHEKIT_DJANGO_SOCKET"], namespace=OPTIONS["namespace"],
                                 serializer=None) as keyless:
            if ENCRYPTION_KEY:
                with self.assertRaises(cachekit_shm.EncryptedValueError):
                    keyless.get_raw(cache.make_key("cachekit-probe"))
            else:
                self.assertIsNotNone(keyless.get_raw(cache.make_key("cachekit-probe")))

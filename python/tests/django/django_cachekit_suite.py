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
"""

import os

from cache.tests import BaseCacheTests, caches_setting_for_tests
from django.test import TestCase, override_settings

EXCLUDED_ALIASES = {"cull", "zero_cull"}


@override_settings(
    CACHES=caches_setting_for_tests(
        BACKEND="cachekit_shm.django.CachekitCache",
        LOCATION=os.environ["CACHEKIT_DJANGO_SOCKET"],
        OPTIONS={"namespace": os.environ["CACHEKIT_DJANGO_NAMESPACE"]},
        exclude=EXCLUDED_ALIASES,
    )
)
class CachekitCacheTests(BaseCacheTests, TestCase):
    pass

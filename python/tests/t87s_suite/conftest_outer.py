"""The outer conftest of t87s's own test suite (copied as conftest.py next to the extracted
sdist's tests/ by test_t87s_suite.py): before t87s's tests import anything, every name of
``AsyncMemoryAdapter`` in t87s becomes a stand-in that stores in cachekitd through
``cachekit_shm.t87s.CachekitAdapter``, each instance in a fresh namespace of the daemon at
``$CACHEKIT_T87S_SOCKET`` (so tests never see each other's entries)."""

import os
import uuid

import t87s
import t87s.adapters
import t87s.adapters.memory

from cachekit_shm.t87s import CachekitAdapter

SOCKET = os.environ["CACHEKIT_T87S_SOCKET"]


class CachekitStandIn(CachekitAdapter):
    """AsyncMemoryAdapter's constructor, cachekitd's storage."""

    def __init__(self, max_items=None):
        if max_items is not None:
            raise TypeError("max_items is the memory adapter's own LRU bound; cachekitd evicts by memory")
        super().__init__(socket=SOCKET, namespace=f"t87s-{uuid.uuid4().hex[:12]}")


for module in (t87s, t87s.adapters, t87s.adapters.memory):
    module.AsyncMemoryAdapter = CachekitStandIn

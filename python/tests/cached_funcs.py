"""Functions cached with @cached, imported by the parent test process and by spawned children
(tests/test_multiprocess.py): the same module and qualname in every process."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import os
from decimal import Decimal

from cachekit_shm import cached


class Color(enum.Enum):
    RED = 1


@dataclasses.dataclass(frozen=True)
class Query:
    table: str
    ids: frozenset


@cached(ttl=300)
def compute(*args, **kwargs):
    """Returns the pid of the process that computed it: a hit returns the first one's."""
    return os.getpid()


# Arguments whose naive encodings (hash(), repr of a set, pickle of a dict of sets) are not
# stable across processes or insertion orders.
CALLS = [
    ((1, "a", b"b", 2.5, None, True), {}),
    (({"x": 1, "y": {"z", "w", "v"}},), {}),
    (({"y": {"v", "w", "z"}, "x": 1},), {}),  # the same mapping, another order: the same key
    ((frozenset({"alpha", "beta", "gamma", "delta"}),), {"flag": False}),
    ((Query("users", frozenset({"u1", "u2", "u3"})), Color.RED), {}),
    ((datetime.datetime(2026, 11, 22, 1, 2, 3), Decimal("1.10")), {"kw": [1, (2, 3)]}),
]

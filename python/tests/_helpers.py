"""Helpers for the tests (importable as ``_helpers``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import time
from typing import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Polls `predicate` until true; fails after `timeout` seconds (a watchdog, not a timing
    assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)

"""Failures of single partitions (a tenant, an organization, a project) within one run.

A partition whose credentials are refused must not stop the others from loading. Its resource
code calls `report()` and skips it, leaving that partition's state untouched; the runner
collects the reports around `pipeline.run()` and fails the run after the rest has loaded.
Outside a collecting runner, `report()` raises, so nothing is ever skipped silently.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, List, Optional

from sources.errors import SyncError

_collected: ContextVar[Optional[List[str]]] = ContextVar("partition_failures", default=None)


@contextmanager
def collecting() -> Iterator[List[str]]:
    """Collect partition failures reported while the block runs."""
    failures: List[str] = []
    token = _collected.set(failures)
    try:
        yield failures
    finally:
        _collected.reset(token)


def report(message: str) -> None:
    """Record that one partition failed (message names it, never its credentials)."""
    failures = _collected.get()
    if failures is None:
        raise SyncError(message)
    if message not in failures:
        failures.append(message)


def any_failed() -> bool:
    """Whether a partition has failed so far in the collecting run."""
    return bool(_collected.get())

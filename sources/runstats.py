"""Per-resource counters of one run (requests, pages, retries, rate-limit waits).

The runner opens `collecting()` around a sync; the HTTP layer calls `count()` for every
request it makes, and the counts land under the dlt resource that was running (a request
made outside any resource counts under the source itself, as ""). The run log reads them.
Threads started by a resource must run in a copy of its context (see `sources.byid`).
"""

from __future__ import annotations

import threading
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Dict, Iterator, Optional

import dlt
from dlt.common.exceptions import ResourceNameNotAvailable

_counts: ContextVar[Optional[Dict[str, Counter]]] = ContextVar("run_counts", default=None)
_lock = threading.Lock()  # partitions and by-id reads count from several threads


@contextmanager
def collecting() -> Iterator[Dict[str, Counter]]:
    """Collect counts per resource name while the block runs."""
    counts: Dict[str, Counter] = {}
    token = _counts.set(counts)
    try:
        yield counts
    finally:
        _counts.reset(token)


def count(kind: str, n: int = 1) -> None:
    """Add `n` to counter `kind` of the running resource (no-op outside a collecting run)."""
    counts = _counts.get()
    if counts is None:
        return
    try:
        resource = dlt.current.resource_name()
    except ResourceNameNotAvailable:
        resource = ""
    with _lock:
        counts.setdefault(resource, Counter())[kind] += n

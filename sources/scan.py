"""The partitioned-scan driver: the one way every source reads its partitions.

A source reads per partition (a Session Services tenant, a Mobile Next organization, a
sessionvision project), each with its own id, state and standing. An API that refuses one
partition (a revoked token, a project that is gone) must not stop the others: the refused
partition is reported (`sources.partitions`), its checkpoints move no further than the rows
read before the refusal, the others load, and the runner then fails the run. This module owns
those mechanics, so a source keeps only its API's quirks: how it plans a partition's window,
builds a request, reads a page.

- `Partition`: id, client, the statuses that refuse it alone, and whether it has failed.
- `each()`: a resource's reads, partition after partition, each under its partition's guard.
- `Scan` and `run()`: plan -> pages -> rows -> finish for partitions paged at once. `run()`
  owns the fan-out (`sources.fanout`), batching (`sources.batches`), a failed partition and
  the checkpoint move; a `Scan` subclass plans in its constructor, fetches and parses in
  `pages()` (on a fan-out thread) and compares with the warehouse in `take()`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Generic,
    Iterable,
    Iterator,
    Optional,
    Sequence,
    TypeVar,
)

import dlt
import pyarrow as pa

from sources import fanout, partitions
from sources.batches import Batches
from sources.errors import ApiError
from sources.http import PARTITION_STATUSES, ApiClient

T = TypeVar("T")
P = TypeVar("P", bound="Partition")
State = Dict[str, Any]


class Partition:
    """One partition within one run.

    Args:
        id: the partition's id (its key in the resource state).
        client: the client that reads it.
        label: names it in a failure message, e.g. `mobilenext: organization org_a`.
        refused_by: the statuses that refuse this partition alone. Any other error fails
            the run. A source whose partitions share one credential leaves out 401.
    """

    def __init__(self, id: str, client: ApiClient, label: str,
                 refused_by: FrozenSet[int] = PARTITION_STATUSES) -> None:
        self.id, self.client, self.label, self.refused_by = id, client, label, refused_by
        self.failed = False

    def begin(self) -> None:
        """Runs, guarded, before each resource reads this partition (default: nothing)."""

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Turn a refusal of this partition into its failure alone; re-raise anything else."""
        try:
            yield
        except ApiError as exc:
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        """Fail this partition alone when `exc` refuses it; re-raise anything else."""
        if not (isinstance(exc, ApiError) and exc.status in self.refused_by):
            raise exc
        self.failed = True
        text = str(exc)
        partitions.report(text if text.startswith(self.label) else f"{self.label}: {text}")


def states(group: str) -> Dict[str, State]:
    """The running resource's state per partition id, kept under `group`."""
    found: Dict[str, State] = dlt.current.resource_state().setdefault(group, {})
    return found


def each(parts: Sequence[P], group: str, read: Callable[[P, State], Iterable[T]]) -> Iterator[T]:
    """What `read(partition, its state)` yields, for each partition in good standing in turn.

    A partition the API refuses while it is read (or in its `begin()`) fails alone: what it
    yielded before stays, its state is whatever `read` moved before (checkpoints move after
    their rows), and the next partition is read.
    """
    state = states(group)
    for part in parts:
        if part.failed:
            continue
        with part.guard():
            part.begin()
            yield from read(part, state.setdefault(part.id, {}))


class Scan(Generic[P, T]):
    """One partition's scan in one run: plan -> pages -> rows -> finish.

    A subclass plans the window in its constructor (reading the warehouse there is fine: it
    runs in the reader), and implements `pages()` (fetch and parse only: it runs on a fan-out
    thread), `take()` (a page's rows to write, compared with the warehouse), and may add
    `finish()` (rows once every page is read, e.g. deletions) and `commit()` (the checkpoint
    move; not called for a bounded scan, such as a backfill window, or a failed partition).
    """

    bounded = False  # a backfill window: no incremental state is read or written

    def __init__(self, partition: P) -> None:
        self.partition = partition
        self.wrote = False  # whether a page or the finish gave rows to write

    def pages(self) -> Iterable[T]:
        raise NotImplementedError

    def take(self, page: T) -> Optional[pa.Table]:
        raise NotImplementedError

    def finish(self) -> Optional[pa.Table]:
        return None

    def commit(self, wrote: bool) -> None:
        """Move the partition's checkpoint after a complete scan (`wrote`: rows written)."""


def run(scans: Sequence[Scan[Any, Any]], workers: int) -> Iterator[pa.Table]:
    """Page every scan at once, `workers` at a time; yield their rows in batches.

    Each scan's pages arrive in order; a scan the API refuses fails its partition alone
    (its checkpoint stays), any other error stops the run; a scan that read every page is
    finished and its checkpoint moved.
    """
    batches = Batches()

    def collect(scan: Scan[Any, Any], table: Optional[pa.Table]) -> Optional[pa.Table]:
        scan.wrote = scan.wrote or table is not None
        return batches.add(table)

    for message in fanout.interleave([(scan, scan.pages) for scan in scans], workers):
        scan = message.key
        if isinstance(message, fanout.Page):
            batch = collect(scan, scan.take(message.items))
        elif message.error is not None:
            scan.partition.fail(message.error)
            batch = None
        else:
            batch = collect(scan, scan.finish())
            if not scan.bounded:
                scan.commit(scan.wrote)
        if batch is not None:
            yield batch
    last = batches.flush()
    if last is not None:
        yield last

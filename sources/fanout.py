"""Page independent partitions at once, a few at a time, each a little ahead of its reader.

A source with several partitions (Mobile Next organizations, sessionvision projects) pages
each with its own paginator. `interleave` runs those page streams on up to `workers` threads,
so one partition's network waits overlap the others' and the reader's own work (comparing
with the warehouse, building Arrow tables, dlt writing files). A stream runs at most `depth`
pages ahead of the reader, which bounds memory. The threads only fetch and parse: the reader,
in dlt's extract thread, does everything that touches the warehouse or dlt state.

The reader gets `Page(key, items)` in arrival order (in order within a partition) and one
`End(key, error)` per partition, `error` being what stopped that stream, if anything; it
decides whether an error fails the partition or the run. Closing the reader stops the
streams at their next page.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Generic,
    Iterable,
    Iterator,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

# At most this many threads (and sockets) page at once, whatever the partitions ask for: a
# source with 150 tenants at 8 requests each would otherwise open 1,200.
MAX_THREADS = 32
K = TypeVar("K")
T = TypeVar("T")


@dataclass
class Page(Generic[K, T]):
    key: K
    items: T


@dataclass
class End(Generic[K]):
    key: K
    error: Optional[BaseException] = None


class _Stopped(Exception):
    """The reader went away; the stream ends without reporting."""


def interleave(streams: Sequence[Tuple[K, Callable[[], Iterable[T]]]], workers: int,
               depth: int = 2) -> Iterator[Union[Page[K, T], End[K]]]:
    """Run each `(key, make_stream)` on a pool of `workers` threads; yield what they produce.

    Each stream runs in a copy of the caller's context, so the run's counters land under
    the resource that called this.
    """
    if not streams:
        return
    threads = max(1, min(workers, len(streams), MAX_THREADS))
    inbox: queue.Queue = queue.Queue(maxsize=max(1, depth) * threads)
    stop = threading.Event()

    def put(message: Any) -> None:
        while not stop.is_set():
            try:
                inbox.put(message, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def run(key: K, make: Callable[[], Iterable[T]]) -> None:
        try:
            iterator = iter(make())
            try:
                for items in iterator:
                    put(Page(key, items))
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except _Stopped:
            return
        except BaseException as exc:  # handed to the reader, who decides  # noqa: BLE001
            try:
                put(End(key, exc))
            except _Stopped:
                pass
            return
        try:
            put(End(key))
        except _Stopped:
            pass

    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fanout")
    try:
        for key, make in streams:
            pool.submit(copy_context().run, run, key, make)
        ended = 0
        while ended < len(streams):
            message = inbox.get()
            if isinstance(message, End):
                ended += 1
            yield message
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)

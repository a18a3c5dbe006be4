"""`sessionsync backfill`: load a historical window in chunks, resumably, beside the schedule.

Each chunk is one run of the source's own code with a `window` (the same paging, comparison
with the warehouse and merge as an incremental run) under a pipeline of its own,
`sessionsync_<source>_backfill`, so the scheduled sync's incremental state is never read or
moved. Chunks go newest first (the newest-first APIs walk back with `before`). A completed
chunk is recorded in that pipeline's state in the same load as its rows, so a rerun after a
crash skips exactly the chunks that landed. The source's write lock is held throughout, so
a scheduled run that comes due waits for its next turn instead of writing at the same time.

Chunks lie on a grid anchored at `--start` and are recorded by their absolute bounds under a
job named by start, chunk length and resources (not the end): a rerun with `--end` omitted
("now", later each time) skips every whole chunk already loaded and reads only the newest,
partial one again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import dlt
from dlt.sources import DltResource

from pipelines import sharing
from pipelines.aftermath import publish_bi_copy
from pipelines.lock import LockedError, warehouse_lock
from pipelines.registry import SOURCES
from pipelines.run import SyncResult, make_pipeline, one_line_error, sync_locked, write_log
from pipelines.status import parse_duration
from pipelines.warehouse import resolve_location
from sources import partitions
from sources.errors import SyncError
from sources.timeutil import parse_ts

log = logging.getLogger("sessionsync")
# With `--chunk` omitted, the grid is of days and each run (one extract, normalize and load)
# takes as many consecutive days as make about LOAD_ROWS rows, going by the rows per day of
# the run before (FIRST_DAYS for the first, which measures them). So a load's size, and the
# memory it needs, follows rows rather than history, and small histories pay a run's fixed
# cost a few times, not once per week.
LOAD_ROWS = 200_000
FIRST_DAYS = 1
# Such loads need little DuckDB memory (a merge of 1M rows passes at 128MB, see
# docs/performance.md), and DuckDB fills what it is given: half the default limit keeps a
# backfill's peak flat. A limit the user set applies as it is.
ROW_SIZED_DUCKDB_MEMORY = "128MB"
DAY = timedelta(days=1)


@dataclass
class Chunk:
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


@dataclass
class BackfillResult:
    source: str
    ok: bool
    chunks: int = 0
    skipped: int = 0  # completed by an earlier, interrupted backfill
    rows: Dict[str, int] = field(default_factory=dict)
    error: Optional[str] = None
    locked: bool = False


def plan(start: datetime, end: datetime, size: timedelta) -> List[Chunk]:
    """Chunks covering `[start, end)`, newest first, on a grid of `size` from `start`: every
    chunk is `[start + k * size, start + (k + 1) * size)` but the newest, which ends at `end`.
    The grid does not move with `end`, so chunks loaded by an earlier run are found again."""
    if end <= start:
        raise SyncError(f"backfill: --end {end.isoformat()} is not after --start")
    chunks, lo = [], start
    while lo < end:
        hi = min(lo + size, end)
        chunks.append(Chunk(lo, hi))
        lo = hi
    return chunks[::-1]


def backfill(source: str, start: str, end: Optional[str], chunk: Optional[str],
             resources: Optional[Sequence[str]], destination: str = "duckdb",
             warehouse: Optional[str] = None,
             on_chunk: Optional[Callable[[int, int, Chunk, Optional[SyncResult]], None]] = None,
             mode: str = "backfill") -> BackfillResult:
    """Run the backfill; `on_chunk(done, total, chunk, result)` reports progress (`done` and
    `total` count grid chunks; `chunk` is what the run covered), `mode` is the run log's
    (`dagster` when Dagster runs it). `chunk` None: a grid of days, runs sized by rows."""
    try:
        windowed = SOURCES[source].backfill if source in SOURCES else ()
        if not windowed:  # the spec's `backfill`: resources the API filters on record time
            raise SyncError(f"backfill: {source} has no time filter to window by; its first "
                            f"sync reads all history (backfill supports "
                            f"{', '.join(n for n, s in SOURCES.items() if s.backfill)})")
        lo, hi = parse_ts(start), parse_ts(end) if end else datetime.now(UTC)
        size = timedelta(seconds=parse_duration(chunk, "--chunk")) if chunk else DAY
        chunks = plan(lo, hi, size)
        only = list(resources or windowed)
        for resource in only:
            needed = SOURCES[source].needs.get(resource)
            if needed and needed not in only:
                raise SyncError(f"backfill: {source} reads {resource} for the {needed} a window "
                                f"loads; add --resource {needed}")
        job = f"{lo.isoformat()}/{size.total_seconds():g}s/{','.join(sorted(only))}"
        location = resolve_location(destination, warehouse)
        name = backfill_pipeline(source)
        result = BackfillResult(source, ok=True, chunks=len(chunks))
        loaded = False
        with warehouse_lock(source, destination, location):
            memory = None if chunk else ROW_SIZED_DUCKDB_MEMORY
            with sharing.warehouse_access(source, destination, location):  # reads the warehouse
                # one pipeline for every run: its state is read from the warehouse once, here
                pipeline = _without_unloaded(make_pipeline(
                    source, destination, warehouse, name, memory), source)
                done = _completed(pipeline, source, job)
            days = FIRST_DAYS if chunk is None else 1  # grid chunks per run
            n = 0
            log_rows: List[Dict[str, Any]] = []  # every run's, appended once at the end
            while n < len(chunks):
                if chunks[n].key in done:
                    n += 1
                    result.skipped += 1
                    if on_chunk:
                        on_chunk(n, len(chunks), chunks[n - 1], None)
                    continue
                group = _pending_run(chunks, n, days, done)
                piece = Chunk(group[-1].start, group[0].end)
                later = any(c.key not in done for c in chunks[n + len(group):])
                # a source with `reread` resources reads them in the last load only
                deferring = {"defer": later} if SOURCES[source].reread else {}
                run = sync_locked(source, destination, warehouse, location, mode, name,
                                  only=only, extra=_progress_marker(job, [c.key for c in group]),
                                  new_only=SOURCES[source].new_only, publish=False,
                                  log_rows=log_rows,
                                  duckdb_memory=memory, pipeline=pipeline,
                                  window=[piece.start.isoformat(), piece.end.isoformat()],
                                  **deferring)
                n += len(group)
                loaded = loaded or bool(run.rows)
                for table, rows in run.rows.items():
                    result.rows[table] = result.rows.get(table, 0) + rows
                if on_chunk:
                    on_chunk(n, len(chunks), piece, run)
                if not run.ok:
                    result.ok, result.error = False, run.error
                    break
                if chunk is None:
                    per_day = sum(run.rows.values()) / ((piece.end - piece.start) / DAY)
                    days = max(1, int(LOAD_ROWS / per_day)) if per_day else days * 2
            with sharing.warehouse_access(source, destination, location):
                write_log(log_rows, source, destination, location)
                if loaded:  # the BI copy once, not once per chunk: it copies the whole file
                    publish_bi_copy(destination, location)
        return result
    except LockedError as exc:
        return BackfillResult(source, ok=False, error=str(exc), locked=True)
    except SyncError as exc:
        return BackfillResult(source, ok=False, error=str(exc))
    except ValueError as exc:  # an unreadable --start or --end
        return BackfillResult(source, ok=False, error=f"backfill: {exc}")
    except Exception as exc:  # reported as one line; the traceback goes to the debug log
        log.debug("backfill of %s failed", source, exc_info=True)
        return BackfillResult(source, ok=False, error=one_line_error(source, exc))


def backfill_pipeline(source: str) -> str:
    """The name of the dlt pipeline that backfills `source`."""
    return f"sessionsync_{source}_backfill"


def _pending_run(chunks: List[Chunk], n: int, days: int, done: set) -> List[Chunk]:
    """Up to `days` consecutive chunks from `chunks[n]` (newest first), none of them done."""
    group = [chunks[n]]
    while len(group) < days and n + len(group) < len(chunks) \
            and chunks[n + len(group)].key not in done:
        group.append(chunks[n + len(group)])
    return group


def _without_unloaded(pipeline: dlt.Pipeline, source: str) -> dlt.Pipeline:
    """The backfill pipeline with any chunk whose load did not finish undone.

    A chunk's rows and its "done" mark are extracted together, and dlt keeps the mark in local
    state at once, before the load. If the load then failed (killed, out of memory, the
    warehouse locked), local state says done while the warehouse lacks the rows. Such packages
    are discarded with the local state, which is then restored from the warehouse (the next
    `sync_destination`), so the chunk counts as not done and is read again from the API:
    loading the old package instead could write rows older than what the scheduled sync has
    loaded since.
    """
    if not pipeline.has_pending_data:
        return pipeline
    log.warning("%s: backfill: a chunk whose load did not finish is read again", source)
    return pipeline.drop()


def _completed(pipeline: dlt.Pipeline, source: str, job: str) -> set:
    """Chunks of `job` already loaded, from the backfill pipeline's state (restored from the
    warehouse when the local working folder is gone)."""
    try:
        pipeline.sync_destination()
    except Exception:  # nothing loaded by this pipeline yet  # noqa: BLE001
        pass
    state = pipeline.state.get("sources", {}).get(source, {})
    return set(state.get("backfill", {}).get(job, []))


def _progress_marker(job: str, keys: List[str]) -> DltResource:
    """A resource, run after the others, that records the run's chunks as done in source
    state.

    It yields no rows; its state change is committed with the chunk's rows, and only if no
    partition (organization, project) failed.
    """
    @dlt.resource(name="backfill_progress")
    def backfill_progress() -> Iterator[None]:
        if not partitions.any_failed():
            dlt.current.source_state().setdefault("backfill", {}).setdefault(job, []).extend(keys)
        yield from ()

    return backfill_progress

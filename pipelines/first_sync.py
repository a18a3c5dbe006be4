"""A first sync loads history in loads sized by rows, then hands over to incremental runs.

A first sync of a source reads all of its history. Loaded as one package and merged, the
load's memory (DuckDB's above all) grows with that history: 3M events fail at a 128 MB DuckDB
limit. For a source whose spec has `history` and `backfill` resources, a first sync instead:

1. asks the source for the window `[start_date, the API's clock now)`, the clock read from a
   response before any of the reads below (`SourceSpec.history`);
2. loads that window as a default backfill of the spec's `backfill` resources less its
   `reread` ones (`pipelines.backfill`: runs of about `LOAD_ROWS`
   rows, events appended, each day marked done with its rows, so a killed first sync resumes
   by the day);
3. runs the source's scheduled pipeline once with `since` = that clock reading: it reads as
   if its last run had started then (events from 48 hours before it), so whatever became
   visible during the backfill is loaded, and the watermark it keeps comes from its own first
   response, as on every run. That pipeline starts from the backfill's schema, so it reads
   back what the backfill loaded and writes (merged) only the events the warehouse lacks.

If the backfill fails (a partition refused, the API down), the rest is an ordinary first sync
(one load, merged), which reports the failure as it always has. A first sync is the scheduled
pipeline's first: it holds no state of the source, locally or
(after a wiped working folder) in the warehouse. Anything else is an ordinary run.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable, Dict, Optional, Tuple

from pipelines.backfill import backfill, backfill_pipeline
from pipelines.registry import SOURCES
from pipelines.run import SyncResult, make_pipeline

log = logging.getLogger("sessionsync")


def is_first(source: str, destination: str, warehouse: Optional[str]) -> bool:
    """Whether the next sync of `source` is a first sync that loads history in row-sized
    loads: the source can (`history` and `backfill` in its spec) and its scheduled pipeline
    holds no state of it, nor a load left pending."""
    spec = SOURCES.get(source)
    if spec is None or not spec.history or not spec.backfill:
        return False
    pipeline = make_pipeline(source, destination, warehouse)
    if source in pipeline.state.get("sources", {}) or pipeline.has_pending_data:
        return False
    try:
        pipeline.sync_destination()  # the working folder may be gone, the warehouse not
    except Exception:  # nothing loaded by this pipeline yet  # noqa: BLE001
        pass
    return source not in pipeline.state.get("sources", {})


def load_history(source: str, destination: str, warehouse: Optional[str],
                 mode: str) -> Tuple[Optional[SyncResult], Dict[str, Any], Dict[str, int]]:
    """Backfill the source's history; returns a failed result (or None), the arguments of
    the run that takes over (`since`) and the rows loaded per table."""
    module, attr = SOURCES[source].history.split(":")  # type: ignore[union-attr]
    window: Callable[[], Any] = getattr(importlib.import_module(module), attr)
    start, now = window()
    if now <= start:  # start_date is in the future: nothing to load in advance
        return None, {}, {}
    log.info("%s: first sync: loading %s to %s in row-sized loads", source,
             start.isoformat(), now.isoformat())
    spec = SOURCES[source]
    only = [r for r in spec.backfill if r not in spec.reread]  # the hand-over reads those
    done = backfill(source, start.isoformat(), now.isoformat(), None, only, destination,
                    warehouse, mode=mode)
    if done.locked:
        return SyncResult(source, ok=False, error=done.error, locked=True), {}, {}
    if not done.ok:  # e.g. a project refused: a backfill run fails as a whole, so the rest
        # loads as an ordinary first sync, where a refused partition fails alone (merged
        # over what the backfill loaded; a killed or rerun first sync resumes the backfill)
        log.info("%s: first sync: %s; loading the rest in one run", source, done.error)
        return None, {}, done.rows
    _adopt_schema(source, destination, warehouse)
    return None, {"since": now.isoformat()}, done.rows


def _adopt_schema(source: str, destination: str, warehouse: Optional[str]) -> None:
    """Give the scheduled pipeline, before its first run, the backfill's schema: its tables
    are then known to hold the backfill's rows, so the hand-over run and the runs after read
    those back (`sources.loaded`) and write only what the warehouse lacks. Without it, the
    hand-over wrote the 48 hours of events it reads again, merged into all of history (a
    first sync of 1M events into Delta took twice as long)."""
    scheduled = make_pipeline(source, destination, warehouse)
    filled = make_pipeline(source, destination, warehouse, backfill_pipeline(source))
    if filled.default_schema_name is not None:
        scheduled._inject_schema(filled.default_schema.clone())

"""`sessionsync reset`: forget a source's (or some resources') state and drop their tables,
so the next sync reloads them from the start.

It runs under the source's write lock (refused at once while a sync of that source runs)
and the warehouse lock, and uses dlt's own drop (`dlt.pipeline.helpers.pipeline_drop`): the
tables and the state go in one load into the warehouse, where dlt keeps the state, so a lost
local working folder cannot bring them back. A backfill's record of finished chunks is
forgotten too, since the rows those chunks loaded are gone. The reset is recorded in the run
log with mode and status `reset`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import List, Optional, Sequence

from dlt.pipeline.helpers import pipeline_drop

from pipelines import bi_copy, runlog, sharing
from pipelines.lock import warehouse_lock
from pipelines.registry import SOURCES
from pipelines.run import make_pipeline
from pipelines.warehouse import resolve_location
from sources.errors import SyncError


@dataclass
class ResetResult:
    source: str
    tables: List[str] = field(default_factory=list)  # tables dropped
    resources: List[str] = field(default_factory=list)  # resources whose state was forgotten


def reset(source: str, resources: Optional[Sequence[str]] = None, destination: str = "duckdb",
          warehouse: Optional[str] = None) -> ResetResult:
    """Drop the tables and state of `resources` of `source` (all of them when none given).

    Raises:
        LockedError: a sync of the source is running.
        SyncError: unknown source or resource, or the source was never synced.
    """
    if source not in SOURCES:
        raise SyncError(f"unknown source {source!r}; known sources: {', '.join(SOURCES)}")
    location = resolve_location(destination, warehouse)
    started = datetime.now(UTC)
    with warehouse_lock(source, destination, location), \
            sharing.warehouse_access(source, destination, location):
        pipeline = make_pipeline(source, destination, warehouse)
        pipeline.sync_destination()  # the state and schema as the warehouse holds them
        if not pipeline.default_schema_name:
            raise SyncError(f"{source}: nothing to reset; it was never synced into {location}")
        known = sorted({t["resource"] for t in pipeline.default_schema.data_tables()
                        if t.get("resource")})
        unknown = sorted(set(resources or ()) - set(known))
        if unknown:
            raise SyncError(f"{source}: no resource {', '.join(unknown)} in the warehouse; "
                            f"it has {', '.join(known)}")
        chosen = list(resources) if resources else known
        drop = pipeline_drop(pipeline, resources=chosen, drop_all=not resources,
                             state_paths="*" if not resources else ())
        result = ResetResult(source, tables=list(drop.info["tables"]), resources=chosen)
        drop()
        backfill = make_pipeline(source, destination, warehouse, f"sessionsync_{source}_backfill")
        backfill.sync_destination()
        if backfill.default_schema_name and backfill.state.get("sources"):
            pipeline_drop(backfill, state_paths="backfill")()
        now = datetime.now(UTC)
        runlog.write([{**row, "mode": "reset", "status": "reset"} for row in runlog.run_rows(
            uuid.uuid4().hex, source, chosen, "reset", started, now, "reset", {}, {}, {},
            f"reset: dropped {', '.join(result.tables) or 'no tables'}")],
            source, destination, location)
        if destination == "duckdb":
            bi_copy.publish(location)
    return result

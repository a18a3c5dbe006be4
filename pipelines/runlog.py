"""The run log: a row per resource per run in the table `sessionsync_ops.sessionsync_runs`.

Every run (manual `sync`, scheduled, `backfill`) appends its rows after it ends, under the
source's write lock, through a small dlt pipeline of its own. Nothing secret is written:
errors are the same one-line, redacted messages the CLI prints.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional

import dlt

from pipelines.registry import HIGH_WATER
from pipelines.warehouse import connect, dlt_destination, pipelines_dir
from sources.http import SyncError

log = logging.getLogger("sessionsync")
DATASET, TABLE = "sessionsync_ops", "sessionsync_runs"  # not "sessionsync": the DuckDB file's name
COLUMNS: Dict[str, Any] = {
    "run_id": {"data_type": "text", "nullable": False},
    "source": {"data_type": "text", "nullable": False},
    "resource": {"data_type": "text", "nullable": False},
    "mode": {"data_type": "text"},
    "started_at": {"data_type": "timestamp"},
    "finished_at": {"data_type": "timestamp"},
    "status": {"data_type": "text"},
    "rows_loaded": {"data_type": "bigint"},
    "pages": {"data_type": "bigint"},
    "requests": {"data_type": "bigint"},
    "retries": {"data_type": "bigint"},
    "rate_limit_waits": {"data_type": "bigint"},
    "high_water_mark": {"data_type": "timestamp"},
    "error": {"data_type": "text"},
}


def run_rows(run_id: str, source: str, resources: List[str], mode: str, started: datetime,
             finished: datetime, status: str, table_rows: Dict[str, int],
             counts: Dict[str, Counter], marks: Dict[str, Optional[datetime]],
             error: Optional[str]) -> List[Dict[str, Any]]:
    """One row per resource: rows of its table and child tables, and its HTTP counters."""
    out = []
    for resource in resources:
        c = counts.get(resource, Counter())
        out.append({
            "run_id": run_id, "source": source, "resource": resource, "mode": mode,
            "started_at": started, "finished_at": finished, "status": status,
            "rows_loaded": sum(n for t, n in table_rows.items()
                               if t == resource or t.startswith(resource + "__")),
            "pages": c["pages"], "requests": c["requests"], "retries": c["retries"],
            "rate_limit_waits": c["rate_limit_waits"], "high_water_mark": marks.get(resource),
            "error": error,
        })
    return out


def high_water_marks(source: str, destination: str, location: Path) -> Dict[str, Any]:
    """The newest record time loaded per resource (see `registry.HIGH_WATER`)."""
    try:
        with connect(destination, location) as con:
            return read_marks(con, source)
    except SyncError:  # no warehouse yet
        return {}


def read_marks(con: Any, source: str) -> Dict[str, Any]:
    """High-water marks of a source's resources through an open warehouse connection."""
    return {resource: scalar(con, f'SELECT max("{column}") FROM "{source}"."{resource}"')
            for resource, column in HIGH_WATER.get(source, {}).items()}


def scalar(con: Any, sql: str) -> Any:
    """The single value `sql` returns, or None when its table was not loaded yet."""
    try:
        row = con.execute(sql).fetchone()
    except Exception:  # table not loaded yet  # noqa: BLE001
        return None
    return row[0] if row else None


def write(rows: List[Dict[str, Any]], source: str, destination: str, location: Path) -> None:
    """Append run rows to the warehouse; a failure here is logged, never raised."""
    if not rows:
        return
    try:
        pipeline = dlt.pipeline(
            pipeline_name=f"sessionsync_runlog_{source}",
            pipelines_dir=str(pipelines_dir(destination, location)),
            destination=dlt_destination(destination, location), dataset_name=DATASET)
        if pipeline.has_pending_data:  # rows of a run killed while logging: load them first
            pipeline.normalize()
            pipeline.load()
        pipeline.run(rows, table_name=TABLE, write_disposition="append", columns=COLUMNS,
                     table_format="delta" if destination == "parquet" else None)  # type: ignore[arg-type]
    except Exception as exc:  # the sync's own outcome stands  # noqa: BLE001
        log.warning("%s: could not write the run log: %s", source, " ".join(str(exc).split())[:200])

"""The run log: a row per resource per run in the table `sessionsync_ops.sessionsync_runs`.

Every run (manual `sync`, scheduled) appends its rows after it ends, under the source's write
lock, as one append of its own (see `write`); a `backfill` appends the rows of all its runs
once, when it ends (an append costs a warehouse connection and commit, ~0.1-1 s). Nothing
secret is written: errors are the same one-line, redacted messages the CLI prints.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any, Dict, List, Optional

import pyarrow as pa

from pipelines.registry import SOURCES
from pipelines.remote import object_store
from pipelines.warehouse import Location, connect
from sources.errors import SyncError

log = logging.getLogger("sessionsync")
DATASET, TABLE = "sessionsync_ops", "sessionsync_runs"  # not "sessionsync": the DuckDB file's name
_TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("resource", pa.string(), nullable=False),
    ("mode", pa.string()),
    ("started_at", _TS),
    ("finished_at", _TS),
    ("status", pa.string()),
    ("rows_loaded", pa.int64()),
    ("pages", pa.int64()),
    ("requests", pa.int64()),
    ("retries", pa.int64()),
    ("rate_limit_waits", pa.int64()),
    ("high_water_mark", _TS),
    ("error", pa.string()),
])
_SQL_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.bool_(): "BOOLEAN",
              _TS: "TIMESTAMP WITH TIME ZONE"}


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


def high_water_marks(source: str, destination: str, location: Location) -> Dict[str, Any]:
    """The newest record time loaded per resource (the spec's `high_water` columns)."""
    try:
        with connect(destination, location) as con:
            return read_marks(con, source)
    except SyncError:  # no warehouse yet
        return {}


def read_marks(con: Any, source: str) -> Dict[str, Any]:
    """High-water marks of a source's resources through an open warehouse connection."""
    columns = SOURCES[source].high_water if source in SOURCES else {}
    return {resource: scalar(con, f'SELECT max("{column}") FROM "{source}"."{resource}"')
            for resource, column in columns.items()}


def scalar(con: Any, sql: str) -> Any:
    """The single value `sql` returns, or None when its table was not loaded yet."""
    try:
        row = con.execute(sql).fetchone()
    except Exception:  # table not loaded yet  # noqa: BLE001
        return None
    return row[0] if row else None


def write(rows: List[Dict[str, Any]], source: str, destination: str, location: Location) -> None:
    """Append run rows to the warehouse; a failure here is logged, never raised.

    One atomic append (an INSERT into DuckDB or Postgres, a Delta commit) straight to the
    table, not a dlt load: a run that loaded nothing leaves no load package behind, and
    logging costs milliseconds instead of a pipeline run. Writers of different sources may
    append at once (Postgres, object storage): a first append that races another's
    `CREATE TABLE` is tried again.
    """
    if not rows:
        return
    runs = pa.Table.from_pylist(rows, schema=SCHEMA)
    for attempt in range(3):
        try:
            append(runs, TABLE, destination, location)
            return
        except Exception as exc:  # the sync's own outcome stands  # noqa: BLE001
            if attempt == 2:
                log.warning("%s: could not write the run log: %s", source,
                            " ".join(str(exc).split())[:200])


def append(runs: pa.Table, table: str, destination: str, location: Location) -> None:
    """Append Arrow rows to `sessionsync_ops.<table>` of any warehouse, creating it."""
    if destination == "parquet":
        from deltalake import write_deltalake  # only the file warehouse needs it

        options: Dict[str, str] = {}
        if isinstance(location, str):
            options = object_store(location)[1]
            path = f"{location}/{DATASET}/{table}"
        else:
            path = str(location / DATASET / table)
        write_deltalake(path, runs, mode="append", storage_options=options or None)
        return
    # Plain SQL with parameters, not a scan of the Arrow table: a process's first Arrow scan
    # in DuckDB costs 70-120 ms, most of a no-op sync's run log.
    names = runs.column_names
    row = f"({', '.join('?' * len(names))})"
    values = [v for r in runs.to_pylist() for v in r.values()]
    with connect(destination, location, read_only=False) as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {DATASET}")
        con.execute(f"CREATE TABLE IF NOT EXISTS {DATASET}.{table} ("
                    + ", ".join(f"{f.name} {_SQL_TYPES[f.type]}" for f in runs.schema) + ")")
        con.execute(f"INSERT INTO {DATASET}.{table} ({', '.join(names)}) VALUES "
                    + ", ".join([row] * runs.num_rows), values)

"""Warehouse locations, dlt destinations, and one read interface over both warehouses.

`duckdb` is one DuckDB file. `parquet` is a folder of Delta tables (Parquet files plus a
transaction log): plain Parquet cannot upsert, and merged tables must read back as their
current state with one row per id, which Delta gives. `connect()` opens either one as a
DuckDB connection where every table is `<source>.<table>`, for BI queries and for tests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, List, Optional

import dlt
import duckdb
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from pipelines import settings
from pipelines.delta import ensure_delta_extension
from sources.http import SyncError

DESTINATIONS = ("duckdb", "parquet")


def resolve_location(destination: str, warehouse: Optional[str]) -> Path:
    """The warehouse path: the `--warehouse` option, else the configured default (a relative
    path is under `settings.home()`)."""
    if destination not in DESTINATIONS:
        raise SyncError(
            f"unknown destination {destination!r}; use one of {', '.join(DESTINATIONS)}")
    key = "sessionsync.warehouse" if destination == "duckdb" else "sessionsync.file_warehouse"
    return Path(warehouse).absolute() if warehouse else settings.path(key)


def dlt_destination(destination: str, location: Path) -> Any:
    """The dlt destination object for a warehouse."""
    if destination == "duckdb":
        location.parent.mkdir(parents=True, exist_ok=True)
        return dlt.destinations.duckdb(DuckDbCredentials(
            str(location), global_config=settings.mapping(
                "destination.duckdb.credentials.global_config")))
    location.mkdir(parents=True, exist_ok=True)
    return dlt.destinations.filesystem(bucket_url=location.as_uri())


def pipelines_dir(destination: str, location: Path) -> Path:
    """dlt working folder for one warehouse, so two warehouses never share local state."""
    digest = hashlib.sha1(str(location).encode()).hexdigest()[:10]
    return settings.path("sessionsync.pipelines_dir") / f"{destination}-{digest}"


def connect(destination: str, location: Path) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB view of a warehouse, every table reachable as `<source>.<table>`."""
    if destination == "duckdb":
        if not location.exists():
            raise SyncError(f"no warehouse at {location}; run `sessionsync sync` first")
        return duckdb.connect(str(location), read_only=True)
    ensure_delta_extension()
    con = duckdb.connect()
    con.execute("LOAD delta")
    for log in sorted(location.glob("*/*/_delta_log")):
        table_dir = log.parent
        schema, table = table_dir.parent.name, table_dir.name
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        con.execute(
            f"CREATE VIEW \"{schema}\".\"{table}\" AS SELECT * FROM delta_scan('{table_dir}')"
        )
    return con


def data_tables(con: duckdb.DuckDBPyConnection) -> List[str]:
    """`source.table` names of the loaded data tables (dlt's own bookkeeping left out)."""
    rows = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_name NOT LIKE '\\_dlt\\_%' ESCAPE '\\' "
        "AND table_schema NOT LIKE '%\\_staging' ESCAPE '\\' "
        "AND table_schema NOT IN ('main', 'information_schema', 'pg_catalog') "
        "ORDER BY 1, 2"
    ).fetchall()
    return [f"{s}.{t}" for s, t in rows]


def row_counts(con: duckdb.DuckDBPyConnection) -> Dict[str, int]:
    """Rows per data table."""
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in data_tables(con)}

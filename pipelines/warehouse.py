"""Warehouse locations, dlt destinations, and one read interface over every warehouse.

`duckdb` is one DuckDB file. `parquet` is a folder of Delta tables (Parquet files plus a
transaction log), local or on S3-compatible storage (`s3://bucket/path`): plain Parquet
cannot upsert, and merged tables must read back as their current state with one row per id,
which Delta gives. `postgres` is a Postgres database, one schema per source. `connect()`
opens any of them as a DuckDB connection where every table is `<source>.<table>`, for BI
queries, the run log, `status` and tests.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

import dlt
import duckdb
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from pipelines import remote, settings
from sources.errors import SyncError
from sources.extensions import ensure_delta_extension

DESTINATIONS = ("duckdb", "parquet", "postgres")

# A local path, or the URL of a warehouse on another host (`s3://...`, or the Postgres
# database's address without its password).
Location = Union[Path, str]


def resolve_location(destination: str, warehouse: Optional[str]) -> Location:
    """Where the warehouse is: the `--warehouse` option, else the configured default (a
    relative path is under `settings.home()`).

    Postgres takes its database from dlt's credentials, so `--warehouse` does not apply.
    """
    if destination not in DESTINATIONS:
        raise SyncError(
            f"unknown destination {destination!r}; use one of {', '.join(DESTINATIONS)}")
    if destination == "postgres":
        if warehouse:
            raise SyncError("--warehouse does not apply to postgres: the database is "
                            f"{remote.POSTGRES_SETTING}")
        return remote.postgres_name(remote.postgres_credentials())
    key = "sessionsync.warehouse" if destination == "duckdb" else "sessionsync.file_warehouse"
    value = str(warehouse or settings.get(key))
    if destination == "parquet" and "://" in value and not value.startswith("file://"):
        return value.rstrip("/")
    local = Path(value.removeprefix("file://")).expanduser()
    return local.absolute() if warehouse else settings.home() / local


def is_remote(location: Location) -> bool:
    """True for a warehouse on another host (Postgres, object storage)."""
    return isinstance(location, str)


def dlt_destination(destination: str, location: Location,
                    duckdb_memory: Optional[str] = None) -> Any:
    """The dlt destination object for a warehouse; `duckdb_memory` replaces the default
    DuckDB `memory_limit` (a `global_config` the user set wins)."""
    if destination == "postgres":
        return _partial_config_once(dlt.destinations.postgres())
    if isinstance(location, str):
        return _partial_config_once(dlt.destinations.filesystem(bucket_url=location))
    if destination == "duckdb":
        location.parent.mkdir(parents=True, exist_ok=True)
        key = "destination.duckdb.credentials.global_config"
        config = settings.mapping(key)
        if duckdb_memory and not settings.is_set(key):
            config = {**config, "memory_limit": duckdb_memory}
        credentials = DuckDbCredentials(global_config=config)
        # the path is set as is: dlt parses a string as a connection URL first, importing
        # SQLAlchemy (a tenth of a second) only to find that it is not one
        credentials.database = str(location)
        return _partial_config_once(dlt.destinations.duckdb(credentials))
    location.mkdir(parents=True, exist_ok=True)
    return _partial_config_once(dlt.destinations.filesystem(bucket_url=location.as_uri()))


def _partial_config_once(factory: Any) -> Any:
    """`factory` resolving its partial configuration once instead of at every call.

    dlt asks a destination for its capabilities a dozen times per run (extract, normalize,
    load, `dataset()`), each resolving the destination's configuration from every provider
    again: a measured tenth of a backfill chunk's fixed cost. The partial configuration those
    calls resolve cannot change within a run; the full one (with credentials, for the
    destination's client) is still resolved each time.
    """
    resolve = factory.configuration
    partial: List[Any] = []

    def configuration(initial_config: Any, accept_partial: bool = False) -> Any:
        if not accept_partial:
            return resolve(initial_config, accept_partial)
        if not partial:
            partial.append(resolve(initial_config, accept_partial=True))
        return partial[0]

    factory.configuration = configuration
    return factory


def pipelines_dir(destination: str, location: Location) -> Path:
    """dlt working folder for one warehouse, so two warehouses never share local state."""
    digest = hashlib.sha1(str(location).encode()).hexdigest()[:10]
    return settings.path("sessionsync.pipelines_dir") / f"{destination}-{digest}"


_HELD: Dict[Path, duckdb.DuckDBPyConnection] = {}  # DuckDB files held open (`held_open`)


@contextmanager
def held_open(location: Path, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Keep the DuckDB warehouse open through `con` (read-write) for the block, then close it.

    DuckDB shares one open database among a process's connections to the same file. While
    this one is held, every other connection the block makes (dlt's, the read-backs, the run
    log) finds the file open instead of opening it and reading its catalog again (six opens
    per quiet sync, ~20 ms of CPU each measured at load 10), and the file is checkpointed
    once, when the block ends, rather than at each connection's close. `connect` hands out
    cursors of `con`, read-only requests too: DuckDB refuses a read-only connection to a file
    it has open for writing.
    """
    _HELD[location] = con
    try:
        yield
    finally:
        del _HELD[location]
        con.close()


def connect(destination: str, location: Location,
            read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A DuckDB view of a warehouse, every table reachable as `<source>.<table>`.

    Read-only unless `read_only` is False (the run log's appends to DuckDB and Postgres);
    while the file is `held_open`, a cursor of the held connection.
    """
    if destination == "duckdb":
        assert isinstance(location, Path)
        if location in _HELD:
            return _HELD[location].cursor()
        if read_only and not location.exists():
            raise SyncError(f"no warehouse at {location}; run `sessionsync sync` first")
        return duckdb.connect(str(location), read_only=read_only)
    con = duckdb.connect()
    try:
        if destination == "postgres":
            remote.attach_postgres(con, read_only)
            return con
        ensure_delta_extension()
        con.execute("LOAD delta")
        if isinstance(location, str):
            remote.attach_s3(con, location)
        for schema, table, path in delta_tables(location):
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            con.execute(f"CREATE VIEW \"{schema}\".\"{table}\" AS "
                        f"SELECT * FROM delta_scan({remote.sql_string(path)})")
        return con
    except Exception:
        con.close()
        raise


def delta_tables(location: Location) -> List[tuple]:
    """`(schema, table, path)` of every Delta table of a file warehouse."""
    if isinstance(location, Path):
        return [(log.parent.parent.name, log.parent.name, str(log.parent))
                for log in sorted(location.glob("*/*/_delta_log"))]
    fs, _ = remote.object_store(location)
    scheme = location.split("://", 1)[0]
    found = []
    for log in sorted(fs.glob(location.split("://", 1)[1] + "/*/*/_delta_log")):
        table_dir = log.rsplit("/", 1)[0]
        schema, table = table_dir.split("/")[-2:]
        found.append((schema, table, f"{scheme}://{table_dir}"))
    return found


def data_tables(con: duckdb.DuckDBPyConnection) -> List[str]:
    """`source.table` names of the loaded data tables (dlt's own bookkeeping left out)."""
    rows = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_catalog = current_database() "
        "AND table_name NOT LIKE '\\_dlt\\_%' ESCAPE '\\' "
        "AND table_schema NOT LIKE '%\\_staging' ESCAPE '\\' "
        "AND table_schema NOT IN ('main', 'public', 'information_schema', 'pg_catalog') "
        "ORDER BY 1, 2"
    ).fetchall()
    return [f"{s}.{t}" for s, t in rows]


def row_counts(con: duckdb.DuckDBPyConnection) -> Dict[str, int]:
    """Rows per data table."""
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in data_tables(con)}

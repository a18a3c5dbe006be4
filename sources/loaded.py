"""Read back what an earlier run loaded, from the pipeline's own destination.

Sources use this to emit only rows that are new or changed (so a run with nothing new writes
nothing) and to find records that vanished upstream. It reads through `pipeline.dataset()`,
so it works the same on DuckDB and on the Delta file warehouse.

A run reads back a dozen times (sessionvision: four tables per project). Inside
`one_connection()` (the runner holds it around a run) those reads share one dataset and one
open connection; outside it each read opens its own.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterator, List, Optional, Set

import pyarrow as pa
from dlt.common.configuration.container import Container
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.common.pipeline import PipelineContext
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from sources.extensions import ensure_delta_extension


def sql_literal(value: str) -> str:
    """Quote a string as an SQL literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_timestamp(value: datetime) -> str:
    """A timezone-aware time as an SQL `TIMESTAMPTZ` literal."""
    return f"{sql_literal(value.isoformat())}::TIMESTAMPTZ"


def loaded_ids(table: str, where: str) -> Set[str]:
    """Ids of rows of `table` loaded earlier that match `where` (none before the first load)."""
    loaded = read_loaded(table, ["id"], where)
    return set(loaded.column("id").to_pylist()) if loaded is not None else set()


def read_loaded(table: str, columns: List[str], where: str) -> Optional[pa.Table]:
    """Rows of `table` matching `where` (SQL), or None when nothing was loaded yet.

    Only the absence of the table counts as "nothing loaded"; any other failure to read the
    warehouse raises, because guessing would hide deletions or reload everything silently.
    """
    # the active pipeline, as `dlt.current.pipeline()` returns it, without resolving the
    # pipeline's configuration again as that call does each time (a tenth of a quiet run)
    pipeline: Any = Container()[PipelineContext].pipeline()
    # the pipeline's schema says what was loaded: none before its first load, except a
    # first sync's, which holds what its backfill loaded (`pipelines.first_sync`)
    if pipeline.default_schema_name is None or pipeline.destination is None:
        return None
    if table not in pipeline.default_schema.data_table_names(seen_data_only=True):
        return None
    cols = ", ".join(f'"{c}"' for c in columns)
    sql = f'SELECT {cols} FROM "{table}" WHERE {where}'
    native = pipeline.destination.destination_type.endswith((".duckdb", ".filesystem"))
    try:
        # On DuckDB and Delta the query runs as written: the connection's search path is the
        # dataset, and the result is DuckDB's own Arrow. dlt's SQL rewriting (qualifying
        # names, typing the columns) is kept for other warehouses, whose rows it types.
        return _dataset(pipeline).query(sql, _execute_raw_query=native).arrow()
    except (DestinationUndefinedEntity, DatabaseUndefinedRelation):
        return None


_shared: List[dict] = []  # the open `one_connection` blocks, innermost last


@contextmanager
def one_connection() -> Iterator[None]:
    """Within the block, the current pipeline's reads share one dataset whose connection
    opens at the first read and closes when the block ends."""
    held: dict = {}
    _shared.append(held)
    try:
        yield
    finally:
        _shared.remove(held)
        if "dataset" in held:
            held["dataset"].__exit__(None, None, None)


def _dataset(pipeline: Any) -> Any:
    """The pipeline's dataset: the one `one_connection` holds open, else a new one."""
    if pipeline.destination.destination_type.endswith(".filesystem"):
        ensure_delta_extension()
    if not _shared:
        return pipeline.dataset()
    held = _shared[-1]
    if held.get("pipeline") is not pipeline:
        if "dataset" in held:
            held.pop("dataset").__exit__(None, None, None)
        held["pipeline"], held["dataset"] = pipeline, pipeline.dataset().__enter__()
    return held["dataset"]

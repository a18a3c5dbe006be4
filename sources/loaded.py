"""Read back what an earlier run loaded, from the pipeline's own destination.

Sources use this to emit only rows that are new or changed (so a run with nothing new writes
nothing) and to find records that vanished upstream. It reads through `pipeline.dataset()`,
so it works the same on DuckDB and on the Delta file warehouse.
"""

from __future__ import annotations

from datetime import datetime
from typing import List, Optional, Set

import dlt
import pyarrow as pa
from dlt.common.destination.exceptions import DestinationUndefinedEntity
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
    pipeline = dlt.current.pipeline()
    if pipeline.first_run or pipeline.destination is None:
        return None
    if table not in pipeline.default_schema.data_table_names(seen_data_only=True):
        return None
    ensure_delta_extension()
    dataset = pipeline.dataset()
    cols = ", ".join(f'"{c}"' for c in columns)
    try:
        return dataset.query(f'SELECT {cols} FROM "{table}" WHERE {where}').arrow()
    except (DestinationUndefinedEntity, DatabaseUndefinedRelation):
        return None

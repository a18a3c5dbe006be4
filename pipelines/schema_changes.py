"""Schema changes made visible: each table or column a load adds is recorded in
`sessionsync_ops.schema_changes` (when, source, table, column, type, run id) and announced
in one notice line, so an API adding a field or a newly promoted property does not go unseen.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Dict, List, Set

import pyarrow as pa

from pipelines import runlog
from pipelines.warehouse import Location

log = logging.getLogger("sessionsync")
DATASET, TABLE = "sessionsync_ops", "schema_changes"
SCHEMA = pa.schema([
    ("changed_at", pa.timestamp("us", tz="UTC")),
    ("source", pa.string()),
    ("table_name", pa.string()),
    ("column_name", pa.string()),
    ("data_type", pa.string()),
    ("new_table", pa.bool_()),
    ("run_id", pa.string()),
])


def known_tables(pipeline: Any) -> Set[str]:
    """The tables a pipeline's schema holds before a run."""
    return set(pipeline.default_schema.tables) if pipeline.default_schema_name else set()


def added(load_info: Any, known: Set[str]) -> List[Dict[str, Any]]:
    """Columns each load package of a dlt `LoadInfo` added, dlt's own tables and columns
    left out; a column of a table not in `known` (created by this load) has `new_table`."""
    out: List[Dict[str, Any]] = []
    for package in getattr(load_info, "load_packages", None) or []:
        for table, schema in (package.schema_update or {}).items():
            if table.startswith("_dlt"):
                continue
            new_table = table not in known
            for column, spec in (schema.get("columns") or {}).items():
                if not column.startswith("_dlt_"):
                    out.append({"table_name": table, "column_name": column,
                                "data_type": spec.get("data_type"), "new_table": new_table})
    return out


def record(source: str, run_id: str, changes: List[Dict[str, Any]], destination: str,
           location: Location) -> None:
    """Append `changes` to the warehouse and print one notice line; never raises."""
    if not changes:
        return
    now = datetime.now(UTC)
    rows = pa.Table.from_pylist([{**c, "changed_at": now, "source": source, "run_id": run_id}
                                 for c in changes], schema=SCHEMA)
    tables = sorted({c["table_name"] for c in changes if c["new_table"]})
    columns = [f"{c['table_name']}.{c['column_name']} ({c['data_type']})"
               for c in changes if not c["new_table"]]
    what = ([f"new tables {', '.join(tables)}"] if tables else []) + (
        [f"new columns {', '.join(columns[:10])}"
         + (f" and {len(columns) - 10} more" if len(columns) > 10 else "")] if columns else [])
    # a first load creating its tables is expected; a column added to a table is news
    log.log(logging.WARNING if columns else logging.INFO,
            "notice: %s: schema changed: %s (see %s.%s)", source, "; ".join(what), DATASET, TABLE)
    try:
        runlog.append(rows, TABLE, destination, location)
    except Exception as exc:  # noqa: BLE001 - the sync's own outcome stands
        log.warning("%s: could not record schema changes: %s", source,
                    " ".join(str(exc).split())[:200])

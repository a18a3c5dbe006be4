"""Run syncs: one dlt pipeline per source and warehouse, loading Arrow pages as Parquet."""

from __future__ import annotations

import logging
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import dlt
from dlt.common.schema.exceptions import TablePropertiesConflictException
from dlt.pipeline.exceptions import PipelineStepFailed
from dlt.sources import DltResource

from pipelines import aftermath, runlog, schema_changes, settings, sharing, steps
from pipelines.lock import LockedError, warehouse_lock
from pipelines.registry import SOURCES, source_factory
from pipelines.warehouse import (
    Location,
    connect,
    data_tables,
    dlt_destination,
    pipelines_dir,
    resolve_location,
)
from sources import dedup, loaded, partitions, runstats
from sources.errors import SyncError
from sources.hints import DUCKDB_MERGE, MERGE

log = logging.getLogger("sessionsync")


@dataclass
class SyncResult:
    """Outcome of syncing one source."""

    source: str
    ok: bool
    rows: Dict[str, int] = field(default_factory=dict)  # rows loaded per table this run
    error: Optional[str] = None
    locked: bool = False  # refused: another writer holds the source's lock
    pages: int = 0  # API responses read
    run_id: Optional[str] = None
    resources: List[str] = field(default_factory=list)
    schema_changes: List[Dict[str, Any]] = field(default_factory=list)  # tables/columns added


def make_pipeline(source: str, destination: str, warehouse: Optional[str],
                  name: Optional[str] = None,
                  duckdb_memory: Optional[str] = None) -> dlt.Pipeline:
    """The dlt pipeline of `source` into a warehouse; its dataset is named after the source.

    `duckdb_memory` replaces the default DuckDB `memory_limit` (not one the user set)."""
    location = resolve_location(destination, warehouse)
    name = name or f"sessionsync_{source}"
    settings.enforce_extract_order(name)
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(pipelines_dir(destination, location)),
        destination=dlt_destination(destination, location, duckdb_memory),
        dataset_name=source,
    )


def sync_source(source: str, destination: str = "duckdb", warehouse: Optional[str] = None,
                mode: str = "manual") -> SyncResult:
    """Sync one source under its write lock; never raises, reports failures in the result.

    A first sync of a source with a time filter loads its history in row-sized loads first
    (`pipelines.first_sync`). A partition (tenant, organization, project) that fails is
    reported in `error` while the others load; the result is then not ok, and `rows` counts
    what did load. The run is appended to the run log (`sessionsync_ops.sessionsync_runs`)
    with `mode`.
    """
    from pipelines import first_sync  # it runs backfills, which run syncs

    try:
        location = resolve_location(destination, warehouse)
        args: Dict[str, Any] = {}
        history: Dict[str, int] = {}
        if first_sync.is_first(source, destination, warehouse):
            failed, args, history = first_sync.load_history(source, destination, warehouse,
                                                            mode)
            if failed is not None:
                return failed
        with warehouse_lock(source, destination, location):
            result = sync_locked(source, destination, warehouse, location, mode,
                                 hold_open=True, **args)
        for table, rows in history.items():  # a first sync counts what its backfill loaded
            result.rows[table] = result.rows.get(table, 0) + rows
        return result
    except LockedError as exc:
        return SyncResult(source, ok=False, error=str(exc), locked=True)
    except Exception as exc:  # reported as one line; the traceback goes to the debug log
        log.debug("sync of %s failed", source, exc_info=True)
        return SyncResult(source, ok=False, error=one_line_error(source, exc))


def sync_locked(source: str, destination: str, warehouse: Optional[str], location: Location,
                mode: str, pipeline_name: Optional[str] = None,
                only: Optional[Sequence[str]] = None, extra: Optional[DltResource] = None,
                new_only: Sequence[str] = (), publish: bool = True,
                duckdb_memory: Optional[str] = None, hold_open: bool = False,
                log_rows: Optional[List[Dict[str, Any]]] = None,
                pipeline: Optional[dlt.Pipeline] = None, **source_args: Any) -> SyncResult:
    """One run of a source whose lock the caller holds; logged to the run log.

    `pipeline_name` gives a run its own dlt state (backfill), `only` selects resources,
    `extra` is a resource appended last (it runs after the others), `new_only` names
    resources whose rows are new to the warehouse by construction (appended, not merged;
    see `pipelines.backfill`), `source_args` go to the source function (e.g. a backfill
    `window`). The run holds the warehouse (`pipelines.sharing`, waiting while another
    process uses it), then publishes the BI copy (unless `publish` is False: the caller
    publishes once after many runs), records schema changes, logs a line per resource and
    alerts on a failure. `duckdb_memory`: see `make_pipeline`. `log_rows`: the run's run log
    rows are added to this list instead of written (without high-water marks); the caller
    writes them, with the marks, once for many runs (`write_log`). `hold_open` keeps a
    DuckDB warehouse file open for the whole run (`sharing.warehouse_access`; `sync_source`),
    and the run's read-backs share one connection. A backfill leaves both off: between its
    connections another program may take the file, and its rerun finishes what that failed.
    `pipeline`: the pipeline to run in, made by the caller (a backfill runs all its loads in
    one), whose state the caller has already synced with the warehouse; the run then does
    not read the warehouse's copy of it again.
    """
    # held open, the run's read-backs share one connection too (`sources.loaded`)
    with sharing.warehouse_access(source, destination, location, hold_open=hold_open), \
            (loaded.one_connection() if hold_open else nullcontext()):
        result = _run_locked(source, destination, warehouse, location, mode, pipeline_name,
                             only, extra, new_only, duckdb_memory, log_rows, pipeline,
                             **source_args)
        aftermath.after_run(result, destination, location, publish)
    return result


def _run_locked(source: str, destination: str, warehouse: Optional[str], location: Location,
                mode: str, pipeline_name: Optional[str] = None,
                only: Optional[Sequence[str]] = None, extra: Optional[DltResource] = None,
                new_only: Sequence[str] = (), duckdb_memory: Optional[str] = None,
                log_rows: Optional[List[Dict[str, Any]]] = None,
                given: Optional[dlt.Pipeline] = None, **source_args: Any) -> SyncResult:
    """The run itself: extract, normalize and load, then its run log rows."""
    run_id = uuid.uuid4().hex
    changes: List[Dict[str, Any]] = []
    started = datetime.now(UTC)
    resources: List[str] = []
    rows: Dict[str, int] = {}
    with runstats.collecting() as counts:
        try:
            if given is None:
                pipeline = make_pipeline(source, destination, warehouse, pipeline_name,
                                         duckdb_memory)
            else:  # the current pipeline: read-backs (`sources.loaded`) go through it
                pipeline = given
                pipeline.activate()
            data = source_factory(source)(**source_args)
            if only:
                unknown = set(only) - set(data.resources)
                if unknown:
                    raise SyncError(f"{source}: no resource {', '.join(sorted(unknown))}; "
                                    f"it has {', '.join(data.resources)}")
                data = data.with_resources(*only)
            resources = list(data.selected_resources)
            first_append = pipeline_name is None and _first_append(source)
            if pipeline.has_pending_data and first_append and pipeline.first_run:
                # a first sync killed before its load finished: it may have appended
                log.warning("%s: a first sync whose load did not finish is read again", source)
                pipeline = pipeline.drop()
            if pipeline.has_pending_data:
                # A run killed after extract left packages behind. `run()` would only load
                # them and skip this run's extract, so finish them first, then sync.
                log.warning("%s: finishing the load an interrupted run left behind", source)
                pipeline.normalize()
                pipeline.load()
            new_only = [r for r in new_only if _reads_back(pipeline, r)
                        or not _in_warehouse(source, r, destination, location)]
            if first_append and pipeline.first_run and not _holds_any(source, destination,
                                                                       location):
                new_only = resources  # a first sync with nothing to merge with
            for resource in data.selected_resources.values():
                if resource.write_disposition == MERGE:
                    dedup.apply(resource)  # one row per key per load, the latest read
                    if resource.name in new_only:  # nothing to merge with: a plain insert
                        resource.apply_hints(write_disposition="append")
                    elif destination != "parquet":  # DuckDB, Postgres: see sources/hints.py
                        resource.apply_hints(write_disposition=DUCKDB_MERGE)
            if extra is not None:
                data.resources.add(extra)
            known = schema_changes.known_tables(pipeline)
            with partitions.collecting() as failures:
                load_info = steps.run(  # pipeline.run(), without a load when nothing to load
                    pipeline, data,
                    loader_file_format="parquet",
                    table_format="delta" if destination == "parquet" else None,
                    restore=given is None,
                )
            changes = schema_changes.added(load_info, known)
            info = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
            counted = dict(info.row_counts) if info else {}
            rows = {t: n for t, n in counted.items() if not t.startswith("_dlt")}
            result = SyncResult(source, ok=not failures, rows=rows,
                                error="; ".join(failures) or None)
        except Exception as exc:  # reported as one line; the traceback goes to the debug log
            log.debug("sync of %s failed", source, exc_info=True)
            result = SyncResult(source, ok=False, error=one_line_error(source, exc))
    result.pages = sum(c["pages"] for c in counts.values())
    result.run_id, result.resources, result.schema_changes = run_id, resources, changes
    status = "ok" if result.ok else ("partial" if result.rows else "failed")
    entries = runlog.run_rows(run_id, source, resources, mode, started, datetime.now(UTC),
                              status, rows, counts, {}, result.error)
    if log_rows is None:
        write_log(entries, source, destination, location)
    else:
        log_rows.extend(entries)
    return result


def write_log(entries: List[Dict[str, Any]], source: str, destination: str,
              location: Location) -> None:
    """Append run log rows with the high-water marks the warehouse holds now."""
    if not entries:
        return
    marks = runlog.high_water_marks(source, destination, location)
    runlog.write([{**e, "high_water_mark": marks.get(e["resource"])} for e in entries],
                 source, destination, location)


def _reads_back(pipeline: dlt.Pipeline, table: str) -> bool:
    """Whether a source reading back `table` in this run sees every row loaded before
    (`sources.loaded.read_loaded` reads nothing on a pipeline's first run, or before its
    schema has seen the table). A `new_only` resource relies on that read to leave out what
    is loaded already; without it, it is merged instead (unless the table is not in the
    warehouse at all: `_in_warehouse`)."""
    if pipeline.first_run or pipeline.default_schema_name is None:
        return False
    return table in pipeline.default_schema.data_table_names(seen_data_only=True)


def _in_warehouse(source: str, table: str, destination: str, location: Location) -> bool:
    """Whether the warehouse holds `table` of `source` (loaded by any pipeline); on Postgres
    assumed so (merged: always exact)."""
    if destination == "postgres":
        return True
    try:
        with connect(destination, location) as con:
            return f"{source}.{table}" in data_tables(con)
    except SyncError:  # no warehouse yet
        return False


def _first_append(source: str) -> bool:
    """Whether a first sync of `source` appends (`SourceSpec.first_append`)."""
    spec = SOURCES.get(source)
    return spec is not None and spec.first_append


def _holds_any(source: str, destination: str, location: Location) -> bool:
    """Whether the warehouse holds any table of `source` (loaded by any pipeline, or left by
    a load that did not finish); on Postgres assumed so (merged: always exact)."""
    if destination == "postgres":
        return True
    if destination == "duckdb" and isinstance(location, Path) and not location.exists():
        return False  # no warehouse yet; any other failure to read it fails the run
    with connect(destination, location) as con:
        return any(t.startswith(f"{source}.") for t in data_tables(con))


def sync(sources: Sequence[str], destination: str = "duckdb",
         warehouse: Optional[str] = None) -> List[SyncResult]:
    """Sync each source in turn; one failing source does not stop the others."""
    return [sync_source(s, destination, warehouse) for s in sources]


def one_line_error(source: str, exc: BaseException) -> str:
    """The message a user sees: the innermost sessionsync error, or a named dlt failure."""
    chain: List[BaseException] = []
    current: Optional[BaseException] = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for err in chain:
        if isinstance(err, SyncError):
            return str(err)
    setting = settings.config_error(source, chain)
    if setting:
        return setting
    conflict = next((e for e in chain if isinstance(e, TablePropertiesConflictException)), None)
    if conflict is not None:  # a table an older sessionsync laid out otherwise (its README)
        return (f"{source}: the warehouse's table {conflict.table_name} was loaded by an older "
                f"sessionsync with another layout ({conflict.prop_name}); run `sessionsync "
                f"reset {source}` once (the source's README names the resources to reset)")
    root = chain[-1]
    step = next((e.step for e in chain if isinstance(e, PipelineStepFailed)), None)
    where = f" during {step}" if step else ""
    text = " ".join(str(root).split())
    if "Out of Memory Error" in text:  # DuckDB hit its configured limit; nothing was lost
        return (f"{source}: failed{where}: DuckDB ran out of its memory limit; raise "
                "memory_limit under [destination.duckdb.credentials] in .dlt/config.toml "
                "(or DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG) and run again: the "
                "pending load is finished first")
    return f"{source}: failed{where}: {type(root).__name__}: {text[:300]}"

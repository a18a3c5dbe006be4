"""Run syncs: one dlt pipeline per source and warehouse, loading Arrow pages as Parquet."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.registry import source_factory
from pipelines.warehouse import dlt_destination, pipelines_dir, resolve_location
from sources import partitions
from sources.http import SyncError

log = logging.getLogger("sessionsync")


@dataclass
class SyncResult:
    """Outcome of syncing one source."""

    source: str
    ok: bool
    rows: Dict[str, int] = field(default_factory=dict)  # rows loaded per table this run
    error: Optional[str] = None


def make_pipeline(source: str, destination: str, warehouse: Optional[str]) -> dlt.Pipeline:
    """The dlt pipeline of `source` into a warehouse; its dataset is named after the source."""
    location = resolve_location(destination, warehouse)
    return dlt.pipeline(
        pipeline_name=f"sessionsync_{source}",
        pipelines_dir=str(pipelines_dir(destination, location)),
        destination=dlt_destination(destination, location),
        dataset_name=source,
    )


def sync_source(source: str, destination: str = "duckdb",
                warehouse: Optional[str] = None) -> SyncResult:
    """Sync one source; never raises for a sync failure, reports it in the result instead.

    A partition (tenant, organization) that fails is reported in `error` while the others
    load; the result is then not ok, and `rows` counts what did load.
    """
    try:
        pipeline = make_pipeline(source, destination, warehouse)
        data = source_factory(source)()
        with partitions.collecting() as failures:
            pipeline.run(
                data,
                loader_file_format="parquet",
                table_format="delta" if destination == "parquet" else None,  # type: ignore[arg-type]
            )
    except Exception as exc:  # reported as one line; the traceback goes to the debug log
        log.debug("sync of %s failed", source, exc_info=True)
        return SyncResult(source, ok=False, error=one_line_error(source, exc))
    info = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    counts = dict(info.row_counts) if info else {}
    rows = {t: n for t, n in counts.items() if not t.startswith("_dlt")}
    return SyncResult(source, ok=not failures, rows=rows, error="; ".join(failures) or None)


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
    for err in chain:
        if isinstance(err, ConfigFieldMissingException):
            names = ", ".join(err.fields)
            return (f"{source}: missing setting(s) {names}; set them in .dlt/ or as "
                    f"SOURCES__{source.upper()}__<NAME> environment variables")
    root = chain[-1]
    step = next((e.step for e in chain if isinstance(e, PipelineStepFailed)), None)
    where = f" during {step}" if step else ""
    text = " ".join(str(root).split())[:300]
    return f"{source}: failed{where}: {type(root).__name__}: {text}"

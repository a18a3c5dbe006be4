"""What follows every run, under the warehouse lock: a log line per resource that loaded rows
or failed, schema changes recorded, the BI copy published, and alerts for a failed or partial
run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Dict

from pipelines import alerts, bi_copy, runlog, schema_changes
from pipelines.warehouse import Location

log = logging.getLogger("sessionsync")


def counts_text(rows: Dict[str, int]) -> str:
    """Row counts as an operator reads them: `events=18, persons=10`, or `nothing new`."""
    return ", ".join(f"{t}={n}" for t, n in sorted(rows.items())) or "nothing new"


def after_run(result: Any, destination: str, location: Location, publish: bool = True) -> None:
    """Log, record, publish (unless `publish` is False) and alert for one finished run (a
    `run.SyncResult`)."""
    status = "ok" if result.ok else ("partial" if result.rows else "failed")
    for resource in result.resources or ["*"]:
        mine = {t: n for t, n in result.rows.items()
                if t == resource or t.startswith(resource + "__")}
        # a quiet resource is DEBUG: the run's own line (the scheduler's) says "nothing new"
        log.log(logging.INFO if mine or status != "ok" else logging.DEBUG,
                "%s.%s: %s, %s (run %s)", result.source, resource, status, counts_text(mine),
                (result.run_id or "")[:8])
    if result.run_id:
        schema_changes.record(result.source, result.run_id, result.schema_changes,
                              destination, location)
    if publish and (result.rows or not isinstance(location, Path)
                    or not bi_copy.bi_path(location).exists()):
        publish_bi_copy(destination, location)
    if status != "ok":
        lags = _lags(result.source, destination, location)
        for resource in result.resources or ["*"]:
            alerts.alert("run", result.source, resource, status, result.error,
                         lags.get(resource), result.run_id)


def publish_bi_copy(destination: str, location: Location) -> None:
    """Publish the BI copy of a DuckDB warehouse file (`pipelines.bi_copy`); the caller holds
    the warehouse."""
    if isinstance(location, Path) and destination == "duckdb":
        bi_copy.publish(location)


def _lags(source: str, destination: str, location: Location) -> Dict[str, float]:
    now = datetime.now(UTC)
    return {r: (now - mark).total_seconds()
            for r, mark in runlog.high_water_marks(source, destination, location).items()
            if isinstance(mark, datetime)}

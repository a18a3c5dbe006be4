"""`sessionsync status`: how fresh each resource is, from the warehouse and the run log."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Dict, List, Optional, Sequence

import dlt

from pipelines import alerts, runlog, settings, sharing
from pipelines.warehouse import Location, connect
from sources.errors import SyncError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class ResourceStatus:
    source: str
    resource: str
    last_success: Optional[datetime]
    high_water_mark: Optional[datetime]
    lag_seconds: Optional[float]
    rows: Optional[int]
    last_error: Optional[str]
    max_lag_seconds: Optional[float]
    stale: bool

    def as_json(self) -> Dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in asdict(self).items()}


def parse_duration(text: str, setting: str) -> float:
    """Seconds in "90s", "15m", "1h" or "2d"."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", str(text))
    if not match:
        raise SyncError(f"setting {setting} = {text!r} is not a duration like 90s, 15m, 1h, 2d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def max_lag(source: str) -> Optional[float]:
    """The freshness limit of a source (`[sources.<name>] max_lag`), if one is set."""
    value: Optional[str] = dlt.config.get(f"sources.{source}.max_lag")
    key = f"sources.{source}.max_lag"
    return parse_duration(value, settings.where(key)) if value else None


def status(sources: Sequence[str], destination: str, location: Location,
           now: Optional[datetime] = None) -> List[ResourceStatus]:
    """One entry per source and resource with a high-water mark or a run log row."""
    now = now or datetime.now(UTC)
    out: List[ResourceStatus] = []
    with sharing.warehouse_access("status", destination, location, exclusive=False), \
            connect(destination, location) as con:
        runs: Dict[tuple, tuple] = {}
        try:
            for row in con.execute(f"""
                    SELECT source, resource,
                           max(finished_at) FILTER (WHERE status = 'ok'),
                           arg_max(error, finished_at)
                    FROM {runlog.DATASET}.{runlog.TABLE} GROUP BY ALL""").fetchall():
                runs[(row[0], row[1])] = (row[2], row[3])
        except Exception:  # no run logged yet  # noqa: BLE001
            pass
        for source in sources:
            limit = max_lag(source)
            marks = runlog.read_marks(con, source)
            names = sorted(set(marks) | {r for s, r in runs if s == source})
            for resource in names:
                last_success, last_error = runs.get((source, resource), (None, None))
                rows = runlog.scalar(con, f'SELECT count(*) FROM "{source}"."{resource}"')
                mark = marks.get(resource)
                lag = (now - mark).total_seconds() if isinstance(mark, datetime) else None
                stale = limit is not None and resource in marks and (lag is None or lag > limit)
                out.append(ResourceStatus(source, resource, last_success, mark, lag, rows,
                                          last_error, limit, stale))
    return out



def next_runs() -> Dict[str, datetime]:
    """Per source, the next run `sessionsync schedule` has stored in its job store."""
    store = settings.path("schedules.jobstore")
    if not store.exists():
        return {}
    try:
        with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as con:
            rows = con.execute("SELECT id, next_run_time FROM apscheduler_jobs").fetchall()
    except sqlite3.Error:
        return {}
    return {job.split(":", 1)[1]: datetime.fromtimestamp(when, UTC)
            for job, when in rows if job.startswith("sync:") and when is not None}


def alert_stale(entries: Sequence[ResourceStatus]) -> None:
    """Alert (`pipelines.alerts`) for every resource past its max_lag."""
    for e in entries:
        if e.stale:
            alerts.alert("stale", e.source, e.resource, "stale",
                         f"{e.source}.{e.resource}: newest record is older than max_lag "
                         f"({e.max_lag_seconds:.0f}s)", e.lag_seconds)

"""`sessionsync schedule`: one APScheduler 3.x job per enabled source, persisted in SQLite.

Jobs reference `run_scheduled` by module path, so the SQLAlchemy job store can persist them
and a restart keeps their next-run times. Missed runs coalesce into one (`coalesce=True`,
an explicit `misfire_grace_time`), a source never runs twice at once (`max_instances=1`,
plus the source's write lock against other processes), and jobs run one at a time on a
single worker so two syncs never write the DuckDB file from one process at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any, List, Optional, Sequence

import dlt
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from pipelines import settings
from pipelines.aftermath import counts_text
from pipelines.run import sync_source
from sources.errors import SyncError

log = logging.getLogger("sessionsync.schedule")
JOB_FUNC = "schedules.scheduler:run_scheduled"


def run_scheduled(source: str, destination: str, warehouse: Optional[str]) -> None:
    """The job: one sync in `scheduled` mode; its outcome goes to the log and the run log."""
    result = sync_source(source, destination, warehouse, mode="scheduled")
    if result.ok:
        log.info("%s: ok (%s)", source, counts_text(result.rows))
    elif result.locked:
        log.warning("%s: skipped, %s", source, result.error)
    else:
        log.error("%s: %s", source, result.error)
    if not result.locked and settings.flag("schedules.transform"):
        from pipelines.transform import transform  # `[schedules] transform = true`

        built = transform(destination, warehouse, mode="scheduled")
        if built.ok:
            log.info("transform after %s: ok", source)
        else:
            log.error("transform after %s: %s", source, built.error)


def trigger_for(source: str) -> BaseTrigger:
    """The trigger in `[schedules.<source>]`: `cron = "*/15 * * * *"` or `interval_seconds`."""
    cron: Optional[str] = dlt.config.get(f"schedules.{source}.cron")
    every: Optional[float] = dlt.config.get(f"schedules.{source}.interval_seconds")
    if not cron and not every:
        cron = settings.DEFAULTS.get(f"schedules.{source}.cron")
    try:
        if cron:
            return CronTrigger.from_crontab(cron, timezone="UTC")
        if every:
            return IntervalTrigger(seconds=float(every), timezone="UTC")
    except (TypeError, ValueError) as exc:
        raise SyncError(f"schedules.{source}: invalid schedule ({exc}); set "
                        f"{settings.where(f'schedules.{source}.cron')} or "
                        f"{settings.env_name(f'schedules.{source}.interval_seconds')}") from None
    raise SyncError(f"schedules.{source}: no schedule; set "
                    f"{settings.where(f'schedules.{source}.cron')} (e.g. \"*/15 * * * *\") "
                    f"or {settings.env_name(f'schedules.{source}.interval_seconds')}")


def build_scheduler(sources: Sequence[str], destination: str = "duckdb",
                    warehouse: Optional[str] = None) -> BackgroundScheduler:
    """A started but paused scheduler whose stored jobs match `sources`; `resume()` it.

    A job whose source and trigger are unchanged is kept as stored, with its next-run time,
    so runs missed while sessionsync was down coalesce into one when it resumes.
    """
    triggers = {source: trigger_for(source) for source in sources}
    store = settings.path("schedules.jobstore")
    store.parent.mkdir(parents=True, exist_ok=True)
    grace = int(settings.number("schedules.misfire_grace_seconds"))
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{store}")},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": grace},
        timezone="UTC")
    scheduler.start(paused=True)
    wanted = {f"sync:{source}": source for source in sources}
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            job.remove()
    for job_id, source in wanted.items():
        args: List[Any] = [source, destination, warehouse]
        job = scheduler.get_job(job_id)
        if job is None or str(job.trigger) != str(triggers[source]) or list(job.args) != args:
            scheduler.add_job(JOB_FUNC, triggers[source], id=job_id, name=f"sync {source}",
                              args=args, replace_existing=True)
    return scheduler


def run_until_stopped(scheduler: BackgroundScheduler,
                      stop: Optional[threading.Event] = None) -> None:
    """Resume the scheduler and block until SIGTERM or SIGINT; the run in flight finishes."""
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.resume()
    stop.wait()
    log.info("stopping: waiting for the run in flight to finish")
    scheduler.shutdown(wait=True)

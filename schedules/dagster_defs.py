"""Dagster definitions: sessionsync as a code location (`dagster dev -m schedules.dagster_defs`).

One asset per source resource (`mobilenext/sessions`, ...), computed per source by a plain
multi-asset that calls sessionsync's own pipeline functions, not by dagster-dlt's
`@dlt_assets`: `sync_source` and `backfill` take the per-source write lock, append the run
log (mode `dagster`), commit state in the same load as the data, and record backfill chunks
so an interrupted range resumes. `@dlt_assets` would run the dlt source bare, without any of
that, and would pin dagster to the version dagster-dlt pins.

- An unpartitioned run (the schedule's tick, or the `sync_<source>` job) is the incremental
  sync of the whole source: all its resources in one dlt run, as `sessionsync sync` does.
  If another run is writing the source, it is skipped and logged, like a scheduled run.
- The resources `sessionsync backfill` loads (Mobile Next sessions; sessionvision events,
  sessions, persons) have daily partitions: a run of partitions `[a, b]` (one run per range,
  `BackfillPolicy.single_run`) is a backfill of exactly those days in one-day chunks, and
  waits for the source's lock instead of giving up.
- Asset checks `fresh` apply `[sources.<name>] max_lag` to each resource's newest record,
  as `sessionsync status` does.
- The BI marts (`bi/marts`, the dbt project) are one asset downstream of every resource:
  materializing it runs `sessionsync transform` (mode `dagster`), which waits for the
  sources' locks like a partition run.
"""

import logging
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, TypeVar, Union

import dagster as dg
import dlt
from dagster import AssetCheckExecutionContext, AssetExecutionContext

from pipelines import settings
from pipelines.backfill import BackfillResult, backfill
from pipelines.registry import SOURCES
from pipelines.run import SyncResult, sync_source
from pipelines.status import max_lag, status
from pipelines.transform import TransformResult, transform
from pipelines.warehouse import resolve_location
from sources.errors import SyncError

log = logging.getLogger("sessionsync.dagster")
MODE = "dagster"  # the run log's mode for runs Dagster starts
# Every resource each source loads in one run, from its spec (a test checks this against
# the sources).
RESOURCES: Dict[str, List[str]] = {name: list(spec.resources) for name, spec in SOURCES.items()}
# The first daily partition; earlier days can still be loaded with `sessionsync backfill`.
PARTITIONS_START = "2024-01-01"
# The op concurrency pool of every sync. A DuckDB file takes one writing process: give this
# pool a limit of 1 on the instance (README) when the warehouse is DuckDB.
POOL = "sessionsync_warehouse"
LOCK_POLL_SECONDS = 2.0
Result = TypeVar("Result", SyncResult, BackfillResult, TransformResult)


def wait_for_lock(context: dg.AssetExecutionContext, source: str,
                  attempt: Callable[[], Result]) -> Result:
    """`attempt()` again every few seconds while another run holds the source's lock.

    A refused attempt has done nothing (the lock is taken before any read), so retrying is
    safe; the kernel frees the lock of a killed holder, so the wait ends.
    """
    first = True
    while True:
        result = attempt()
        if not result.locked:
            return result
        if first:  # a run's own time limit (the `dagster/max_runtime` tag) bounds the wait
            context.log.info(f"waiting for the write lock: {result.error}")
            log.info("%s: waiting for the write lock: %s", source, result.error)
            first = False
        time.sleep(LOCK_POLL_SECONDS)


def resource_rows(rows: Dict[str, int], resource: str) -> int:
    """Rows loaded into a resource's table and its child tables (as the run log counts)."""
    return sum(n for t, n in rows.items() if t == resource or t.startswith(resource + "__"))


def source_assets(source: str, destination: str, warehouse: Optional[str]) -> dg.AssetsDefinition:
    """The assets of one source's resources, materialized together by one sync or backfill."""
    windowed = list(SOURCES[source].backfill)
    partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START) if windowed else None
    specs = [dg.AssetSpec([source, resource], group_name=source, skippable=True,
                          kinds={"dlt", destination},
                          partitions_def=partitions if resource in windowed else None,
                          description=f"`{source}.{resource}` in the warehouse")
             for resource in RESOURCES[source]]

    @dg.multi_asset(name=source, specs=specs, pool=POOL,
                    backfill_policy=dg.BackfillPolicy.single_run() if partitions else None)
    def sync_assets(context: AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        result: Union[SyncResult, BackfillResult]
        if windowed and (context.has_partition_key or context.has_partition_key_range):
            days = context.partition_time_window
            selected = list(windowed)

            def run_backfill() -> BackfillResult:
                return backfill(source, days.start.isoformat(), days.end.isoformat(), "1d",
                                windowed, destination, warehouse, mode=MODE)

            result = wait_for_lock(context, source, run_backfill)
            context.log.info(f"{source}: days {days.start:%Y-%m-%d} to {days.end:%Y-%m-%d} "
                             f"(exclusive): {result.chunks - result.skipped} loaded, "
                             f"{result.skipped} already loaded")
        else:
            selected = RESOURCES[source]
            result = sync_source(source, destination, warehouse, mode=MODE)
            if result.locked:
                context.log.warning(f"{source}: skipped, {result.error}; the next run syncs it")
                return
        if not result.ok:
            raise dg.Failure(description=result.error or f"{source}: failed")
        for resource in selected:  # the run log has the same counts, in rows of mode `dagster`
            yield dg.MaterializeResult(asset_key=[source, resource], metadata={
                "rows_loaded": resource_rows(result.rows, resource), "mode": MODE})

    return sync_assets


def marts_asset(destination: str, warehouse: Optional[str]) -> dg.AssetsDefinition:
    """The dbt models (staging and marts) as one asset downstream of every source resource."""
    upstream = [dg.AssetKey([source, resource]) for source in SOURCES
                for resource in RESOURCES[source]]

    @dg.asset(key=["bi", "marts"], deps=upstream, group_name="bi", kinds={"dbt", destination},
              pool=POOL, description="The BI marts (dbt/): rebuilt over the warehouse")
    def marts(context: AssetExecutionContext) -> dg.MaterializeResult:
        result = wait_for_lock(context, "transform",
                               lambda: transform(destination, warehouse, mode=MODE))
        if not result.ok:
            raise dg.Failure(description=result.error or "transform failed")
        return dg.MaterializeResult(metadata={
            "models": len(result.models), "tests_passed": result.tests, "mode": MODE,
            **{f"rows_{m}": n for m, n in sorted(result.models.items()) if n is not None}})

    return marts


def freshness_checks(source: str, destination: str,
                     warehouse: Optional[str]) -> Optional[dg.AssetChecksDefinition]:
    """Check `fresh` on each resource with a record time: lag within `max_lag` (if set)."""
    resources = list(SOURCES[source].high_water)
    if not resources:
        return None
    specs = [dg.AssetCheckSpec("fresh", asset=[source, resource],
                               description=f"newest record within [sources.{source}] max_lag")
             for resource in resources]

    @dg.multi_asset_check(name=f"{source}_freshness", specs=specs, pool=POOL)
    def check(context: AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        limit = max_lag(source)  # an unreadable setting fails the check with its name
        try:
            entries = {e.resource: e for e in status(
                [source], destination, resolve_location(destination, warehouse))}
        except SyncError:  # no warehouse yet
            entries = {}
        for resource in resources:
            entry = entries.get(resource)
            lag = entry.lag_seconds if entry else None
            stale = limit is not None and (lag is None or lag > limit)
            mark = entry.high_water_mark if entry else None
            yield dg.AssetCheckResult(
                asset_key=[source, resource], check_name="fresh", passed=not stale,
                severity=dg.AssetCheckSeverity.ERROR,
                description=(f"no max_lag set for {source}" if limit is None else
                             f"lag {'unknown' if lag is None else f'{lag:.0f}s'}, "
                             f"max_lag {limit:.0f}s"),
                metadata={"lag_seconds": lag, "max_lag_seconds": limit,
                          "high_water_mark": mark.isoformat() if mark else None})

    return check


def cron_for(source: str) -> str:
    """`[schedules.<source>]` as a cron expression: `cron`, or `interval_seconds` when it is
    a whole number of minutes dividing an hour, or of hours dividing a day."""
    cron: Optional[str] = dlt.config.get(f"schedules.{source}.cron")
    every: Optional[float] = dlt.config.get(f"schedules.{source}.interval_seconds")
    if not cron and not every:  # the default in code, as `sessionsync schedule` uses
        cron = settings.DEFAULTS.get(f"schedules.{source}.cron")
    if cron:
        return cron
    if every:
        seconds = float(every)
        if seconds % 60 == 0 and 3600 % seconds == 0:
            return f"*/{int(seconds // 60)} * * * *"
        if seconds % 3600 == 0 and 86400 % seconds == 0:
            return f"0 */{int(seconds // 3600)} * * *"
        raise SyncError(f"schedules.{source}: interval_seconds = {every} has no cron "
                        "equivalent for Dagster; use a divisor of an hour or day, or set cron")
    raise SyncError(f"schedules.{source}: set cron (e.g. \"*/15 * * * *\") or interval_seconds")


def build_definitions(destination: Optional[str] = None, warehouse: Optional[str] = None,
                      scheduled: Optional[Sequence[str]] = None) -> dg.Definitions:
    """Assets and checks for every source, a `sync_<source>` job each, and a running schedule
    for each of `scheduled` (default: `[sessionsync] enabled_sources`).

    `destination` defaults to `[dagster] destination` ("duckdb"); the warehouse location to
    the configured one, as for `sessionsync sync`.
    """
    destination = destination or dlt.config.get("dagster.destination") or "duckdb"
    resolve_location(destination, warehouse)  # an unknown destination fails here, by name
    if scheduled is None:
        scheduled = settings.names("sessionsync.enabled_sources")
    assets, checks, jobs, schedules = [], [], [], []
    for source in SOURCES:
        defs = source_assets(source, destination, warehouse)
        assets.append(defs)
        check = freshness_checks(source, destination, warehouse)
        if check is not None:
            checks.append(check)
        job = dg.define_asset_job(f"sync_{source}", selection=dg.AssetSelection.assets(defs),
                                  tags={"sessionsync/source": source},
                                  description=f"Incremental sync of {source}")
        jobs.append(job)
        if source in scheduled:
            schedules.append(dg.ScheduleDefinition(
                name=f"sync_{source}_schedule", job=job, cron_schedule=cron_for(source),
                execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING))
    marts = marts_asset(destination, warehouse)
    assets.append(marts)
    jobs.append(dg.define_asset_job("bi_transform", selection=dg.AssetSelection.assets(marts),
                                    description="Rebuild the BI marts"))
    return dg.Definitions(assets=assets, asset_checks=checks, jobs=jobs, schedules=schedules)


defs = build_definitions()

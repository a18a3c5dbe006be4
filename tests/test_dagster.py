"""sessionsync on Dagster: partitions, concurrency, the schedule's tick and the freshness check.

Each test runs real Dagster runs in process against an ephemeral instance, the sandbox over
real sockets and a real DuckDB warehouse.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, Dict, List, Optional, Set

import dagster as dg
import pytest

from pipelines.registry import SOURCES, source_factory
from sandbox.core import parse_iso_ms
from sandbox.mobilenext import MobileNextApi
from sandbox.sessionvision import PROJECTS, SessionVisionApi
from schedules.dagster_defs import RESOURCES, build_definitions, source_assets
from sources.errors import SyncError
from tests.conftest import (
    MEMBER_ORGS,
    as_api,
    assert_equals_truth,
    load_count,
    loaded_sessions,
    runs,
)
from tests.conftest import sessionvision_rows as loaded

DAY = timedelta(days=1)


def day_truth(api: MobileNextApi, day: str) -> Dict[str, Dict[str, Any]]:
    """Live sessions created on `day` (UTC), by id."""
    lo = parse_iso_ms(f"{day}T00:00:00Z")
    hi = lo + 86_400_000
    return {s["id"]: s for org in MEMBER_ORGS for s in api.truth(org)
            if lo <= parse_iso_ms(s["createdAt"]) < hi}


def materialize_day(day: str, instance: Optional[dg.DagsterInstance] = None
                    ) -> dg.ExecuteInProcessResult:
    """One run of the Mobile Next assets for one daily partition."""
    return dg.materialize([source_assets("mobilenext", "duckdb", None)], partition_key=day,
                          instance=instance or dg.DagsterInstance.ephemeral())


def metadata(result: dg.ExecuteInProcessResult) -> Dict[str, Dict[str, Any]]:
    """Materialization metadata per asset (`mobilenext/sessions`), as plain values."""
    return {m.asset_key.to_user_string(): {k: v.value for k, v in m.metadata.items()}
            for m in result.asset_materializations_for_node("mobilenext")}


def test_resources_match_the_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every source's resources have an asset: none missing, none made up."""
    for name, value in {"SOURCES__MOBILENEXT__API_KEY": "x",
                        "SOURCES__SESSION_SERVICES__TENANT_TOKENS": '{"t": "x"}',
                        "SOURCES__TAGBASE__API_KEY": "x",
                        "SOURCES__TAGBASE__VERIFICATION_LOG_URL": "/nonexistent",
                        "SOURCES__SESSIONVISION__API_TOKEN": "x",
                        "SOURCES__SESSIONVISION__PROJECT_IDS": '["1"]'}.items():
        monkeypatch.setenv(name, value)  # placeholders: nothing is read
    for source in SOURCES:
        assert list(source_factory(source)().resources) == RESOURCES[source], source


def test_one_day_partition_loads_exactly_that_day_and_again_changes_nothing(
        mobilenext: MobileNextApi) -> None:
    day = "2026-10-27"
    truth = day_truth(mobilenext, day)
    assert len(truth) > 50

    result = materialize_day(day)
    assert result.success
    loaded = loaded_sessions()
    assert loaded.keys() == truth.keys(), "exactly that day's sessions, no other day's"
    assert all(as_api(loaded[i]) == truth[i] for i in truth)
    logged = [r for r in runs() if r["resource"] == "sessions"]
    assert {r["mode"] for r in logged} == {"dagster"} and len(logged) == 1
    # Dagster's run history and sessionsync's run log agree
    meta = metadata(result)
    assert set(meta) == {"mobilenext/sessions"}, "a day's partition is the sessions only"
    assert meta["mobilenext/sessions"]["rows_loaded"] == logged[0]["rows_loaded"] == len(truth)

    loads, all_runs = load_count("mobilenext"), len(runs())
    mobilenext.reset_stats()
    again = materialize_day(day)
    assert again.success
    assert loaded_sessions() == loaded, "the warehouse changed"
    assert load_count("mobilenext") == loads and len(runs()) == all_runs
    assert len(mobilenext.requests) == 0, "the day was loaded already: nothing to read"
    assert metadata(again)["mobilenext/sessions"]["rows_loaded"] == 0


def test_a_partition_range_loads_exactly_those_days(mobilenext: MobileNextApi) -> None:
    days = ["2026-10-24", "2026-10-25", "2026-10-26"]
    result = dg.materialize(
        [source_assets("mobilenext", "duckdb", None)], instance=dg.DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": days[0],
              "dagster/asset_partition_range_end": days[-1]})
    assert result.success
    truth = {i: s for d in days for i, s in day_truth(mobilenext, d).items()}
    assert loaded_sessions().keys() == truth.keys()
    logged = [r for r in runs() if r["resource"] == "sessions"]
    assert len(logged) == 3, "one-day chunks"
    assert sum(r["rows_loaded"] for r in logged) == len(truth)


def test_a_sessionvision_day_loads_exactly_that_days_events(
        sessionvision: SessionVisionApi) -> None:
    day = "2026-10-27"
    lo = parse_iso_ms(f"{day}T00:00:00Z")
    truth = {(p, e["id"]) for p in PROJECTS for e in sessionvision.truth(p, "events")
             if lo <= parse_iso_ms(e["timestamp"]) < lo + 86_400_000}
    assert len(truth) > 50
    result = dg.materialize([source_assets("sessionvision", "duckdb", None)], partition_key=day,
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert set(loaded("events")) == truth
    meta = {m.asset_key.to_user_string(): m.metadata["rows_loaded"].value
            for m in result.asset_materializations_for_node("sessionvision")}
    assert set(meta) == {"sessionvision/events", "sessionvision/sessions", "sessionvision/persons"}
    assert meta["sessionvision/events"] == len(truth)
    assert {r["mode"] for r in runs("sessionvision")} == {"dagster"}


def test_two_partitions_at_once_the_second_waits_for_the_lock(
        mobilenext: MobileNextApi) -> None:
    days = ["2026-10-25", "2026-10-28"]
    waiting = threading.Event()
    first_request = threading.Event()

    class Waiting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting for the write lock" in record.getMessage():
                waiting.set()

    def hold_first_run(request: Any) -> None:
        # the first run's first request waits until the second run found the lock taken
        if not first_request.is_set():
            first_request.set()
            assert waiting.wait(30), "the second run never waited for the lock"

    handler, logger = Waiting(), logging.getLogger("sessionsync.dagster")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    mobilenext.before_request = hold_first_run
    results: Dict[str, dg.ExecuteInProcessResult] = {}
    instances = {day: dg.DagsterInstance.ephemeral() for day in days}

    def run(day: str) -> None:
        results[day] = materialize_day(day, instances[day])

    try:
        first = threading.Thread(target=run, args=(days[0],))
        first.start()
        assert first_request.wait(60)
        second = threading.Thread(target=run, args=(days[1],))
        second.start()
        first.join(120)
        second.join(120)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        mobilenext.before_request = None

    assert waiting.is_set()
    assert results[days[0]].success and results[days[1]].success
    logs = [e.user_message for e in instances[days[1]].all_logs(results[days[1]].run_id)]
    waited = [m for m in logs if "waiting for the write lock" in m]
    assert waited and "another sessionsync run is writing this source" in waited[0]
    truth = {**day_truth(mobilenext, days[0]), **day_truth(mobilenext, days[1])}
    loaded = loaded_sessions()  # asserts one row per id
    assert loaded.keys() == truth.keys(), "a day lost, or another day loaded"
    assert all(as_api(loaded[i]) == truth[i] for i in truth)
    logged = [r for r in runs() if r["resource"] == "sessions"]
    assert [r["status"] for r in logged] == ["ok", "ok"]
    assert logged[0]["finished_at"] <= logged[1]["started_at"], "the writes overlapped"


def tick(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """Evaluate the Mobile Next schedule's tick now and execute the run it requests."""
    schedule = defs.resolve_schedule_def("sync_mobilenext_schedule")
    context = dg.build_schedule_context(instance=instance,
                                        scheduled_execution_time=datetime.now(UTC))
    data = schedule.evaluate_tick(context)
    assert data.run_requests is not None and len(data.run_requests) == 1
    request = data.run_requests[0]
    assert request.partition_key is None, "the tick is the incremental sync, not a partition"
    job = defs.resolve_job_def(schedule.job_name)
    return job.execute_in_process(instance=instance, tags=request.tags,
                                  run_config=request.run_config)


def checks(result: dg.ExecuteInProcessResult) -> Dict[str, bool]:
    return {e.asset_key.to_user_string(): e.passed for e in result.get_asset_check_evaluations()}


def test_scheduled_tick_runs_an_incremental_sync(mobilenext: MobileNextApi) -> None:
    defs = build_definitions(scheduled=["mobilenext"])
    schedule = defs.resolve_schedule_def("sync_mobilenext_schedule")
    assert schedule.cron_schedule == "*/15 * * * *"  # [schedules.mobilenext] in .dlt/config.toml
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.instance_for_test() as instance:
        first = tick(defs, instance)
        assert first.success
        assert_equals_truth(mobilenext)
        full = len(mobilenext.requests)
        mobilenext.reset_stats()
        before = set(loaded_sessions())
        mobilenext.advance(3600)
        second = tick(defs, instance)
        assert second.success
    # every session upstream, current (deletions are found by the daily reconcile, later)
    truth = {s["id"]: s for org in MEMBER_ORGS for s in mobilenext.truth(org)}
    loaded = loaded_sessions()
    assert all(as_api(loaded[i]) == truth[i] for i in truth)
    new = set(loaded) - before
    assert new, "an hour of new sessions"
    assert 0 < len(mobilenext.requests) < full, "incremental: reads only what is new"
    logged = runs()
    assert {r["mode"] for r in logged} == {"dagster"}
    assert [r["resource"] for r in logged] == ["organizations", "sessions"] * 2
    meta = metadata(second)
    assert meta["mobilenext/sessions"]["rows_loaded"] == logged[-1]["rows_loaded"] >= len(new)
    assert checks(second) == {"mobilenext/sessions": True}, "no max_lag: nothing is stale"


def test_interval_schedules_become_cron(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULES__TAGBASE__CRON", "")
    for seconds, cron in (("300", "*/5 * * * *"), ("7200", "0 */2 * * *")):
        monkeypatch.setenv("SCHEDULES__TAGBASE__INTERVAL_SECONDS", seconds)
        schedule = build_definitions(scheduled=["tagbase"]).resolve_schedule_def(
            "sync_tagbase_schedule")
        assert schedule.cron_schedule == cron
    monkeypatch.setenv("SCHEDULES__TAGBASE__INTERVAL_SECONDS", "45")
    with pytest.raises(SyncError, match="schedules.tagbase: interval_seconds = 45"):
        build_definitions(scheduled=["tagbase"])


def test_freshness_check_fails_when_staler_than_max_lag(
        mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch) -> None:
    defs = build_definitions(scheduled=["mobilenext"])
    newest = max(parse_iso_ms(s["createdAt"]) for s in
                 [s for org in MEMBER_ORGS for s in mobilenext.truth(org)]) / 1000
    lag_hours = (datetime.now(UTC).timestamp() - newest) / 3600
    results: List[Dict[str, bool]] = []
    texts: Set[str] = set()
    with dg.instance_for_test() as instance:
        for limit in (lag_hours + 1, lag_hours - 1):  # just above the lag, then just below
            monkeypatch.setenv("SOURCES__MOBILENEXT__MAX_LAG", f"{limit:.4f}h")
            result = tick(defs, instance)
            assert result.success, "a failed check does not fail the sync"
            results.append(checks(result))
            texts |= {e.description or "" for e in result.get_asset_check_evaluations()}
    assert results == [{"mobilenext/sessions": True}, {"mobilenext/sessions": False}]
    assert any("max_lag" in t for t in texts)


def test_the_bi_marts_are_an_asset_downstream_of_every_resource(
        mobilenext: MobileNextApi) -> None:
    """Materializing `bi/marts` after a sync builds the marts, logged with mode `dagster`."""
    defs = build_definitions("duckdb", scheduled=[])
    graph = defs.resolve_asset_graph()
    marts = dg.AssetKey(["bi", "marts"])
    assert graph.get(marts).parent_keys == {
        dg.AssetKey([source, r]) for source in SOURCES for r in RESOURCES[source]}
    assert dg.materialize([source_assets("mobilenext", "duckdb", None)]).success
    result = dg.materialize([defs.get_assets_def(marts)], selection=[marts])
    assert result.success
    built = {m.asset_key: {k: v.value for k, v in m.metadata.items()}
             for m in result.get_asset_materialization_events()
             for m in [m.materialization]}
    assert built[marts]["rows_device_minutes_daily"] > 0
    assert {r["mode"] for r in runs("dbt")} == {"dagster"}

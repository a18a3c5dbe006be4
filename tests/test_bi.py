"""BI marts end to end: four sandboxes synced, `sessionsync transform` (dbt) over both
warehouses, marts compared with the same metrics computed from the sandboxes' own records."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.run import sync
from pipelines.warehouse import resolve_location
from tests.bi import (
    SOURCES,
    World,
    assert_marts_equal_truth,
    late_data_then_incremental_equals_rebuild,
    query,
)
from tests.conftest import Receiver, run_cli


@pytest.mark.slow
def test_marts_equal_sandbox_metrics_and_incremental_equals_full_rebuild(world: World) -> None:
    done = run_cli("sync", "--transform")
    assert done.returncode == 0, done.stderr
    assert "transform: ok" in done.stdout, done.stdout
    assert_marts_equal_truth(world, "duckdb")
    late_data_then_incremental_equals_rebuild(world, "duckdb")


@pytest.mark.slow
def test_delta_warehouse_marts_and_report_in_chromium(world: World, tmp_path: Path) -> None:
    from tests.bi_browser import assert_report_renders_offline

    assert all(r.ok for r in sync(SOURCES, "parquet"))
    done = run_cli("transform", "--destination", "parquet")
    assert done.returncode == 0, done.stderr
    assert_marts_equal_truth(world, "parquet")

    done = run_cli("report", "--destination", "parquet", "--output", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {tmp_path / 'r.html'}"
    assert_report_renders_offline(tmp_path / "r.html", tmp_path)


def test_failed_transform_is_reported_and_leaves_loaded_data(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from schedules.scheduler import run_scheduled

    warehouse = resolve_location("duckdb", None)
    monkeypatch.setenv("SCHEDULES__TRANSFORM", "false")  # as env vars spell it
    run_scheduled("mobilenext", "duckdb", None)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM information_schema.schemata "
                           "WHERE schema_name = 'bi'").fetchone() == (0,)

    # A scheduled run with `[schedules] transform = true` builds the marts of what is loaded
    # (only mobilenext: the other sources' models are left out, not failed).
    monkeypatch.setenv("SCHEDULES__TRANSFORM", "true")
    run_scheduled("mobilenext", "duckdb", None)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        runs = con.execute("SELECT mode, status, count(*) FROM sessionsync_ops.sessionsync_runs "
                           "WHERE source = 'dbt' GROUP BY ALL").fetchall()
        built = con.execute("SELECT count(*) FROM bi.device_minutes_daily").fetchone()
    assert runs == [("scheduled", "ok", 5)], runs  # 3 staging models, 2 marts
    assert built and built[0] > 0

    # A row the models refuse (a platform the contract does not have) fails a dbt test.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("INSERT INTO mobilenext.sessions (id, organization, device__platform, "
                    "created_at, released_at) SELECT 'ses_x', 'org_acme', 'windows', now(), "
                    "now()")
        loaded = con.execute("SELECT * FROM mobilenext.sessions ORDER BY id").fetchall()
        marts = con.execute("SELECT * FROM bi.device_minutes_daily ORDER BY ALL").fetchall()

    hook = Receiver()
    try:
        done = run_cli("transform", ALERTS__WEBHOOK_URL=hook.url)
    finally:
        hook.close()
    assert done.returncode == 1
    # alerted like a failed sync (the command waits for its alerts before it exits)
    assert [(b["source"], b["resource"], b["status"]) for b in hook.bodies] == [
        ("dbt", "transform", "failed")]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("error: transform: test accepted_values_stg_mobilenext__"
                                "sessions_platform"), errors
    assert "model device_minutes_daily skipped" in errors[0]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT * FROM mobilenext.sessions ORDER BY id").fetchall() == loaded
        assert con.execute("SELECT * FROM bi.device_minutes_daily ORDER BY ALL").fetchall() == marts
        failed = con.execute("SELECT resource, error FROM sessionsync_ops.sessionsync_runs "
                             "WHERE source = 'dbt' AND status = 'failed' AND mode = 'manual'"
                             ).fetchall()
    assert ("device_minutes_daily", errors[0][len("error: transform: "):]) in failed


def test_transform_without_synced_tables_says_so(tmp_path: Path) -> None:
    env = {"SESSIONSYNC__WAREHOUSE": "/nonexistent/w.duckdb",
           "SESSIONSYNC__FILE_WAREHOUSE": str(tmp_path / "files"),
           "SESSIONSYNC__PIPELINES_DIR": str(tmp_path / "pipelines")}
    done = run_cli("transform", **env)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: transform: no warehouse at /nonexistent/w.duckdb; "
                                   "run `sessionsync sync` first")
    assert done.stdout == ""

    done = run_cli("transform", "--destination", "parquet", **env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: transform: no synced tables in {tmp_path / 'files'}; run `sessionsync sync` "
        "first")


def test_transform_after_a_reset_builds(world: World) -> None:
    """`reset` writes run-log rows with status `reset`; the models must accept them."""
    assert run_cli("sync").returncode == 0
    done = run_cli("reset", "tagbase", "--yes")
    assert done.returncode == 0, done.stderr
    built = run_cli("transform")
    assert built.returncode == 0, built.stdout + built.stderr
    assert ("tagbase", "reset") in {
        (r[0], r[1]) for r in query("duckdb", "SELECT source_name, last_status FROM "
                                              "bi.resource_freshness")}

"""The Postgres warehouse on a real server the tests start (tests/servers.py): every source's
sync, incremental and no-op run equal the truth; backfill, run log, status; two sources at
once; a kill during the load; the lock across hosts; the password never leaks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines.backfill import backfill
from pipelines.lock import LOCKED_EXIT_CODE
from pipelines.run import sync_source
from pipelines.transform import DBT_DIR
from pipelines.warehouse import connect, resolve_location
from sandbox.core import iso_ms, parse_iso_ms
from sandbox.mobilenext import MobileNextApi
from sandbox.serve import START
from sandbox.sessionvision import PROJECTS, SessionVisionApi
from tests.bi import (
    World,
    assert_marts_equal_truth,
    assert_report_has_every_chart,
    late_data_then_incremental_equals_rebuild,
    query,
)
from tests.conftest import assert_equals_truth, sessionvision_truth
from tests.warehouses import (
    ROOT,
    SOURCES,
    assert_no_secret,
    cli,
    hold_lock_elsewhere,
    kill_during_load,
    run_log,
    source_api,
    sync_incremental_noop,
)

PG_JOB = "dlt.destinations.impl.postgres.postgres.PostgresParquetCopyJob"
DAY_MS = 86_400_000


@pytest.mark.parametrize("source", SOURCES)
def test_sync_incremental_and_noop_equal_the_truth(source: str, postgres: Any,
                                                   request: pytest.FixtureRequest) -> None:
    sync_incremental_noop(source, source_api(request, source), "postgres")


def test_backfill_completes_the_history(postgres: Any, sessionvision: SessionVisionApi,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    start = parse_iso_ms(START)
    monkeypatch.setenv("SOURCES__SESSIONVISION__START_DATE", iso_ms(start - 3 * DAY_MS))
    assert sync_source("sessionvision", "postgres").ok
    result = backfill("sessionvision", iso_ms(start - 12 * DAY_MS), iso_ms(start - 3 * DAY_MS),
                      "3d", None, "postgres")
    assert result.ok, result.error
    older = [e for p in PROJECTS for e in sessionvision.truth(p, "events")
             if parse_iso_ms(e["timestamp"]) < start - 3 * DAY_MS]
    assert result.chunks == 3 and result.rows["events"] == len(older) > 0
    sessionvision_truth(sessionvision, "postgres")
    modes = {r["mode"] for r in run_log("postgres")}
    assert modes == {"manual", "backfill"}


def test_two_sources_syncing_into_one_database_at_once_both_load(
        postgres: Any, mobilenext: MobileNextApi, sessionvision: SessionVisionApi
) -> None:
    procs = [subprocess.Popen([str(Path(sys.executable).parent / "sessionsync"), "sync", s,
                               "--destination", "postgres"], cwd=ROOT, env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in ("mobilenext", "sessionvision")]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, _, stderr in outcomes:
        assert code == 0, stderr
    assert_equals_truth(mobilenext, "postgres")
    sessionvision_truth(sessionvision, "postgres")
    assert {r["source"] for r in run_log("postgres")} == {"mobilenext", "sessionvision"}


def test_a_run_killed_during_its_load_then_rerun_equals_the_truth(
        postgres: Any, mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__MOBILENEXT__RECONCILE_EVERY_HOURS", "0")  # exact deletions
    assert sync_source("mobilenext", "postgres").ok
    mobilenext.advance(12 * 3600)
    killed = kill_during_load("mobilenext", "postgres", PG_JOB)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    with connect("postgres", resolve_location("postgres", None)) as con:
        staged = con.execute("SELECT count(*) FROM mobilenext_staging.sessions").fetchall()[0][0]
    assert staged > 0, "the kill came after the rows reached the database"
    mobilenext.advance(3600)
    again = cli("sync", "mobilenext", "--destination", "postgres")
    assert again.returncode == 0, again.stderr
    assert "finishing the load an interrupted run left behind" in again.stderr
    assert_equals_truth(mobilenext, "postgres")  # also: every id once


def test_a_writer_on_another_host_is_refused_until_it_dies(postgres: Any,
                                                          mobilenext: MobileNextApi,
                                                          tmp_path: Path) -> None:
    """Another host (here: another process with its own working folder, so the host's file
    lock is not shared) holds the source's advisory lock in the database."""
    holder = hold_lock_elsewhere("postgres", tmp_path / "host2")
    refused = cli("sync", "mobilenext", "--destination", "postgres")
    assert refused.returncode == LOCKED_EXIT_CODE, refused.stderr
    assert "another sessionsync run is writing this source" in refused.stderr
    assert f"pid {holder.pid}" in refused.stderr
    assert len(mobilenext.requests) == 0, "a refused writer must not start"
    other = cli("sync", "mobilenext", "--destination", "duckdb")  # another warehouse: free
    assert other.returncode == 0, other.stderr
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    deadline = time.monotonic() + 10  # the server notices the closed connection
    while (taken := cli("sync", "mobilenext", "--destination", "postgres")).returncode \
            == LOCKED_EXIT_CODE and time.monotonic() < deadline:
        time.sleep(0.2)
    assert taken.returncode == 0, taken.stderr
    assert_equals_truth(mobilenext, "postgres")


def test_password_never_in_output_logs_or_the_warehouse(postgres: Any,
                                                        mobilenext: MobileNextApi,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    good = cli("sync", "mobilenext", "--destination", "postgres")
    assert good.returncode == 0, good.stderr
    state = cli("status", "mobilenext", "--destination", "postgres")
    assert state.returncode == 0
    assert any(line.split()[:2] == ["mobilenext", "sessions"]
               for line in state.stdout.splitlines()), state.stdout
    dsn = os.environ["DESTINATION__POSTGRES__CREDENTIALS"]
    wrong = "wrong-" + postgres.password[::-1]
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", dsn.replace(postgres.password, wrong))
    bad = cli("sync", "mobilenext", "--destination", "postgres")
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "password authentication failed" in bad.stderr
    dump = subprocess.run([str(_pg_bin("pg_dump")), "--data-only", dsn],
                          capture_output=True, timeout=60)
    assert dump.returncode == 0 and b"mobilenext" in dump.stdout
    assert_no_secret([postgres.password, wrong],
                     [good.stdout, good.stderr, state.stdout, bad.stdout, bad.stderr],
                     [tmp_path], [dump.stdout])


def _pg_bin(name: str) -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name


def test_a_load_that_carries_a_record_twice_keeps_one_row(
        postgres: Any, mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why merges on Postgres are delete-insert: a load job re-run after a kill stages its rows
    again. dlt's Postgres upsert (MERGE INTO from staging) fails on a key staged twice;
    delete-insert keeps one row per id."""
    import pyarrow as pa

    import sources.scan as driver  # the driver batches every source's partitioned scans
    from sources.batches import Batches

    class Twice(Batches):
        def flush(self) -> pa.Table | None:
            batch = super().flush()
            return None if batch is None else pa.concat_tables([batch, batch])

    monkeypatch.setenv("SOURCES__MOBILENEXT__RECONCILE_EVERY_HOURS", "0")  # exact deletions
    monkeypatch.setattr(driver, "Batches", Twice)
    first = sync_source("mobilenext", "postgres")
    assert first.ok, first.error
    mobilenext.advance(3600)
    second = sync_source("mobilenext", "postgres")
    assert second.ok, second.error
    assert_equals_truth(mobilenext, "postgres")  # asserts every id once


def _database() -> str:
    return os.environ["DESTINATION__POSTGRES__CREDENTIALS"].rsplit("/", 1)[1]


@pytest.mark.slow
def test_bi_marts_built_in_postgres_equal_the_sandbox_metrics(
        world: World, postgres: Any, tmp_path: Path) -> None:
    """`sync --transform` builds the marts in the database (dbt-postgres), where any BI tool
    reads them; late data and an incremental transform equal a rebuild; `report` reads them;
    the password is in no output, file (dbt's logs and artifacts included) or table. The
    database's own time zone is UTC+14: the marts' days are UTC days all the same."""
    postgres.execute(f"ALTER DATABASE \"{_database()}\" SET timezone TO 'Pacific/Kiritimati'")
    done = cli("sync", "--destination", "postgres", "--transform")
    assert done.returncode == 0, done.stderr
    assert "transform: ok" in done.stdout, done.stdout
    assert f"marts in {resolve_location('postgres', None)}" in done.stdout
    direct = postgres.execute("SELECT count(*) FROM bi.active_users_daily", _database())
    assert direct[0][0] == len(query("postgres", "SELECT * FROM bi.active_users_daily")) > 0
    assert_marts_equal_truth(world, "postgres")
    late_data_then_incremental_equals_rebuild(world, "postgres")

    page = tmp_path / "report.html"
    report = cli("report", "--destination", "postgres", "--output", str(page))
    assert report.returncode == 0, report.stderr
    assert_report_has_every_chart(page)
    dump = subprocess.run([str(_pg_bin("pg_dump")), "--data-only",
                           os.environ["DESTINATION__POSTGRES__CREDENTIALS"]],
                          capture_output=True, timeout=60)
    assert dump.returncode == 0 and b"event_sales_daily" in dump.stdout
    assert_no_secret([postgres.password], [done.stdout, done.stderr, report.stdout,
                                           report.stderr], [tmp_path, DBT_DIR], [dump.stdout])


def test_a_failed_transform_exits_1_and_leaves_loaded_data_and_marts(
        postgres: Any, mobilenext: MobileNextApi, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheduled sync with `[schedules] transform = true` builds the marts in Postgres.
    Then a row the models refuse fails a dbt test: exit 1 with one error line, the loaded
    table and the marts built before are as they were. A sync holding its lock on another
    host refuses the transform (75): it never reads a source while it is written."""
    from schedules.scheduler import run_scheduled

    monkeypatch.setenv("SCHEDULES__TRANSFORM", "true")
    run_scheduled("mobilenext", "postgres", None)
    assert {(r["mode"], r["status"]) for r in run_log("postgres") if r["source"] == "dbt"} \
        == {("scheduled", "ok")}
    postgres.execute("INSERT INTO mobilenext.sessions (id, organization, device__platform, "
                     "created_at, released_at) SELECT 'ses_x', 'org_acme', 'windows', now(), "
                     "now()", _database())
    loaded = postgres.execute("SELECT * FROM mobilenext.sessions ORDER BY id", _database())
    marts = postgres.execute("SELECT * FROM bi.device_minutes_daily ORDER BY 1, 2, 3",
                             _database())
    assert marts

    failed = cli("transform", "--destination", "postgres")
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, failed.stderr
    assert errors[0].startswith("error: transform: test accepted_values_stg_mobilenext__"
                                "sessions_platform"), errors
    assert "model device_minutes_daily skipped" in errors[0]
    assert postgres.execute("SELECT * FROM mobilenext.sessions ORDER BY id",
                            _database()) == loaded
    assert postgres.execute("SELECT * FROM bi.device_minutes_daily ORDER BY 1, 2, 3",
                            _database()) == marts
    assert ("device_minutes_daily", "failed") in {
        (r["resource"], r["status"]) for r in run_log("postgres") if r["source"] == "dbt"}

    holder = hold_lock_elsewhere("postgres", tmp_path / "host2")
    try:
        refused = cli("transform", "--destination", "postgres")
    finally:
        holder.kill()
        holder.wait()
    assert refused.returncode == LOCKED_EXIT_CODE, refused.stderr
    assert f"pid {holder.pid}" in refused.stderr


def test_dagster_bi_marts_asset_builds_the_marts_in_postgres(postgres: Any,
                                                              mobilenext: MobileNextApi) -> None:
    """Dagster's `bi/marts` asset exists on a shared warehouse and builds the marts there."""
    import dagster as dg

    from schedules.dagster_defs import build_definitions, source_assets

    defs = build_definitions("postgres", scheduled=[])
    marts = dg.AssetKey(["bi", "marts"])
    assert dg.materialize([source_assets("mobilenext", "postgres", None)]).success
    result = dg.materialize([defs.get_assets_def(marts)], selection=[marts])
    assert result.success
    built = [m.materialization.metadata for m in result.get_asset_materialization_events()]
    rows = postgres.execute("SELECT count(*) FROM bi.device_minutes_daily", _database())[0][0]
    assert built[0]["rows_device_minutes_daily"].value == rows > 0
    assert {r["mode"] for r in run_log("postgres") if r["source"] == "dbt"} == {"dagster"}

"""Operating sessionsync: the write lock, the run log, status, the scheduler, lost local state."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED

from pipelines.lock import LOCKED_EXIT_CODE, source_lock
from pipelines.run import make_pipeline, sync_source
from pipelines.warehouse import pipelines_dir, resolve_location
from sandbox.core import iso_ms, parse_iso_ms
from sandbox.mobilenext import DAY_MS, MobileNextApi
from sandbox.serve import START
from schedules.scheduler import build_scheduler
from tests.conftest import CLI, ROOT, assert_equals_truth, run_cli, runs


def lock_folder() -> Path:
    return pipelines_dir("duckdb", resolve_location("duckdb", None))


def test_second_writer_is_refused_and_a_killed_holder_is_taken_over(
        mobilenext: MobileNextApi) -> None:
    with source_lock("mobilenext", lock_folder()):
        refused = run_cli("sync", "mobilenext")
    assert refused.returncode == LOCKED_EXIT_CODE
    assert "another sessionsync run is writing this source" in refused.stderr
    assert f"pid {os.getpid()}" in refused.stderr
    assert len(mobilenext.requests) == 0, "a refused writer must not start"

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from pipelines.lock import source_lock\n"
        "with source_lock('mobilenext', Path(sys.argv[1])):\n"
        "    print('held', flush=True); time.sleep(120)"), str(lock_folder())],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    assert run_cli("sync", "mobilenext").returncode == LOCKED_EXIT_CODE
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    taken = run_cli("sync", "mobilenext")
    assert taken.returncode == 0, taken.stderr
    assert f"taking over a lock its holder left behind (pid {holder.pid}" in taken.stderr
    assert_equals_truth(mobilenext)


def test_run_log_has_a_row_per_resource_per_run_with_counts(mobilenext: MobileNextApi) -> None:
    first = sync_source("mobilenext")
    assert first.ok
    requests_first = len(mobilenext.requests)
    mobilenext.reset_stats()
    mobilenext.faults.update(rate_429=0.5, rate_5xx=0.2, retry_after=0)
    mobilenext.advance(3600)
    second = sync_source("mobilenext")
    assert second.ok
    rows = runs()
    assert [(r["resource"], r["mode"], r["status"]) for r in rows] == [
        ("organizations", "manual", "ok"), ("sessions", "manual", "ok")] * 2
    by_run = [rows[:2], rows[2:]]
    for result, run in zip((first, second), by_run, strict=True):
        assert len({r["run_id"] for r in run}) == 1
        assert {r["resource"]: r["rows_loaded"] for r in run} == {
            "organizations": result.rows.get("organizations", 0),
            "sessions": result.rows.get("sessions", 0)}
    assert sum(r["requests"] for r in by_run[0]) == requests_first
    assert sum(r["requests"] for r in by_run[1]) == len(mobilenext.requests)
    assert sum(r["rate_limit_waits"] for r in by_run[1]) == mobilenext.injected.get("429", 0) > 0
    assert sum(r["retries"] for r in by_run[1]) == sum(mobilenext.injected.values())
    newest = max(s["createdAt"] for org in ("org_acme", "org_beta") for s in mobilenext.truth(org))
    assert by_run[1][1]["high_water_mark"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] == newest[:23]


def test_status_reports_a_stale_resource_and_exits_nonzero(mobilenext: MobileNextApi) -> None:
    assert sync_source("mobilenext").ok
    fresh = run_cli("status", "mobilenext", "--json", SOURCES__MOBILENEXT__MAX_LAG="100000d")
    assert fresh.returncode == 0, fresh.stderr
    stale = run_cli("status", "mobilenext", "--json", SOURCES__MOBILENEXT__MAX_LAG="1h")
    assert stale.returncode == 1
    entries = {e["resource"]: e for e in json.loads(stale.stdout)}
    assert entries["sessions"]["stale"] and entries["sessions"]["lag_seconds"] > 3600
    assert entries["sessions"]["rows"] == len(mobilenext.truth("org_acme")) + len(
        mobilenext.truth("org_beta"))
    assert entries["sessions"]["last_success"] is not None
    bad = run_cli("status", "mobilenext", SOURCES__MOBILENEXT__MAX_LAG="soon")
    assert bad.returncode == 1 and "not a duration" in bad.stderr


def test_lost_working_directory_resumes_from_the_warehouse(mobilenext: MobileNextApi) -> None:
    assert sync_source("mobilenext").ok
    initial = len(mobilenext.requests)
    mobilenext.reset_stats()
    assert sync_source("mobilenext").ok
    noop = len(mobilenext.requests)
    shutil.rmtree(lock_folder())  # local state and load packages gone
    mobilenext.reset_stats()
    result = sync_source("mobilenext")
    assert result.ok and "sessions" not in result.rows
    assert len(mobilenext.requests) == noop < initial
    assert_equals_truth(mobilenext)


def test_scheduler_keeps_its_job_store_and_coalesces_missed_runs(
        mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCHEDULES__JOBSTORE", str(tmp_path / "jobs.sqlite"))
    monkeypatch.setenv("SCHEDULES__MOBILENEXT__INTERVAL_SECONDS", "4")
    monkeypatch.setenv("SCHEDULES__MOBILENEXT__CRON", "")
    events: List[Any] = []

    def start() -> Any:
        scheduler = build_scheduler(["mobilenext"])
        scheduler.add_listener(events.append,
                               EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
        scheduler.resume()
        return scheduler

    scheduler = start()
    _wait(lambda: any(e.code == EVENT_JOB_EXECUTED for e in events), 20)
    scheduler.shutdown(wait=True)
    ran_before = len(runs())
    assert ran_before == 2 and {r["mode"] for r in runs()} == {"scheduled"}

    scheduler = build_scheduler(["mobilenext"])  # restarted: the stored job is kept as it was
    stored_next = scheduler.get_job("sync:mobilenext").next_run_time
    scheduler.shutdown(wait=False)
    time.sleep(max(0.0, stored_next.timestamp() - time.time()) + 9)  # two runs missed
    events.clear()
    scheduler = start()
    _wait(lambda: any(e.code == EVENT_JOB_EXECUTED for e in events), 20)
    scheduler.shutdown(wait=True)
    first = next(e for e in events if e.code == EVENT_JOB_SUBMITTED)
    # three run times were due (the stored one and two more); they ran once, as the latest,
    # on the stored job's own grid
    assert len(first.scheduled_run_times) == 1, "missed runs must coalesce into one"
    missed = (first.scheduled_run_times[0] - stored_next).total_seconds()
    assert missed >= 8 and missed % 4 == 0
    assert not any(e.code == EVENT_JOB_MISSED for e in events)
    assert len(runs()) >= ran_before + 2
    assert_equals_truth(mobilenext)


def test_schedule_stops_cleanly_on_sigterm(mobilenext: MobileNextApi, tmp_path: Path) -> None:
    env = {**os.environ, "SCHEDULES__JOBSTORE": str(tmp_path / "jobs.sqlite"),
           "SCHEDULES__MOBILENEXT__CRON": "", "SCHEDULES__MOBILENEXT__INTERVAL_SECONDS": "1",
           "SESSIONSYNC__ENABLED_SOURCES": '["mobilenext"]'}
    proc = subprocess.Popen([CLI, "schedule"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:  # the scheduler logs each run's outcome
            lines.append(line)
            if "mobilenext: ok" in line:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, "".join(lines) + err
    assert "scheduler stopped" in out
    assert all(r["status"] == "ok" for r in runs())
    assert_equals_truth(mobilenext)


def _wait(condition: Any, seconds: float) -> None:
    deadline = time.time() + seconds
    while not condition():
        if time.time() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)



def test_backfill_killed_midway_resumes_once_and_leaves_the_schedule_state(
        mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch) -> None:
    start = parse_iso_ms(START)
    monkeypatch.setenv("SOURCES__MOBILENEXT__START_DATE", iso_ms(start - 3 * DAY_MS))
    assert sync_source("mobilenext").ok  # the scheduled sync covers the last 3 days
    scheduled = json.dumps(make_pipeline("mobilenext", "duckdb", None).state["sources"],
                           sort_keys=True)
    window = ["--start", iso_ms(start - 10 * DAY_MS), "--end", iso_ms(start - 3 * DAY_MS),
              "--chunk", "1d"]

    proc = subprocess.Popen([CLI, "backfill", "mobilenext", *window], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = []

    def kill_on_eighth(request: Any) -> None:
        seen.append(request.path)
        if len(seen) == 8:
            os.kill(proc.pid, signal.SIGKILL)
    mobilenext.before_request = kill_on_eighth
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert out.count("rows") >= 1, "at least one chunk finished before the kill"
    mobilenext.before_request = None

    mobilenext.reset_stats()
    rerun = run_cli("backfill", "mobilenext", *window)
    assert rerun.returncode == 0, rerun.stderr
    skipped = int(rerun.stdout.split("chunks loaded, ")[1].split(" already done")[0])
    assert 1 <= skipped < 7
    assert_equals_truth(mobilenext)  # every session of all 10 days, once, current
    after = json.dumps(make_pipeline("mobilenext", "duckdb", None).state["sources"],
                       sort_keys=True)
    assert after == scheduled, "the backfill moved the scheduled sync's state"
    assert {r["mode"] for r in runs()} == {"manual", "backfill"}


def test_backfill_refuses_a_source_without_a_time_filter(mobilenext: MobileNextApi) -> None:
    proc = run_cli("backfill", "tagbase", "--start", "2026-10-01")
    assert proc.returncode == 1 and "has no time filter" in proc.stderr

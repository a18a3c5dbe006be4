"""Backfill: resuming after a load that failed, resuming with `--end` omitted, chunk bounds
inside a millisecond."""

from __future__ import annotations

from typing import Any, List

import duckdb
import pytest

from pipelines.backfill import backfill
from pipelines.warehouse import resolve_location
from sandbox.core import iso_ms, parse_iso_ms
from sandbox.mobilenext import DAY_MS, MobileNextApi
from sandbox.serve import START
from tests.conftest import assert_equals_truth, loaded_sessions, run_cli, runs


def _done(out: str) -> int:
    """Chunks a backfill reported as already done."""
    return int(out.split("chunks loaded, ")[1].split(" already done")[0])


def test_backfill_whose_last_load_failed_loads_it_on_the_rerun(
        mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch) -> None:
    start = parse_iso_ms(START)
    monkeypatch.setenv("SOURCES__MOBILENEXT__START_DATE", iso_ms(start - 10 * DAY_MS))
    window = ["--start", iso_ms(start - 10 * DAY_MS), "--end", iso_ms(start),
              "--chunk", "5d"]
    # The last (oldest) chunk is extracted, then its load finds the warehouse locked by
    # another process (a BI tool holding it read-write): the load fails after the chunk's
    # rows and its "done" mark were extracted together.
    orgs_listed: List[int] = []
    holder: List[Any] = []

    def lock_during_last_load(request: Any) -> None:
        if request.path == "/api/v1/organizations":
            orgs_listed.append(1)
        elif len(orgs_listed) == 2 and not holder:
            holder.append(duckdb.connect(str(resolve_location("duckdb", None))))
    mobilenext.before_request = lock_during_last_load
    try:
        failed = run_cli("backfill", "mobilenext", *window)
    finally:
        mobilenext.before_request = None
        for con in holder:
            con.close()
    assert holder, "the warehouse was never locked"
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "lock" in failed.stderr, failed.stderr

    rerun = run_cli("backfill", "mobilenext", *window)
    assert rerun.returncode == 0, rerun.stderr
    assert_equals_truth(mobilenext)  # every session of the window, the oldest chunk's too
    assert _done(rerun.stdout) == 1, rerun.stdout  # the newest chunk loaded before the failure
    again = run_cli("backfill", "mobilenext", *window)
    assert again.returncode == 0 and _done(again.stdout) == 2, again.stdout + again.stderr


def test_backfill_without_end_resumes(mobilenext: MobileNextApi,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    start = parse_iso_ms(START)
    monkeypatch.setenv("SOURCES__MOBILENEXT__START_DATE", iso_ms(start - 10 * DAY_MS))
    window = ["--start", iso_ms(start - 10 * DAY_MS), "--chunk", "30d"]  # up to this machine's now
    first = run_cli("backfill", "mobilenext", *window)
    assert first.returncode == 0, first.stderr
    assert _done(first.stdout) == 0
    total = int(first.stdout.split("backfill ok, ")[1].split(" chunks")[0])
    assert total >= 2, first.stdout
    assert_equals_truth(mobilenext)
    mobilenext.reset_stats()
    rerun = run_cli("backfill", "mobilenext", *window)
    assert rerun.returncode == 0, rerun.stderr
    # every chunk but the newest (which ends at a later "now") is done and not read again
    assert _done(rerun.stdout) == total - 1, rerun.stdout
    assert mobilenext.count("/api/v1/organizations") == 1
    assert_equals_truth(mobilenext)


def test_backfill_end_inside_a_millisecond_marks_nothing_deleted(
        mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch) -> None:
    start = parse_iso_ms(START)
    monkeypatch.setenv("SOURCES__MOBILENEXT__START_DATE", iso_ms(start - 10 * DAY_MS))
    # sessions in the millisecond .123 of two chunk bounds, loaded by a scheduled sync
    at = start - 3_600_000 + 123
    boundary = set(mobilenext.create_sessions("org_acme", at, 4))
    boundary |= set(mobilenext.create_sessions("org_beta", at - DAY_MS, 3))
    assert run_cli("sync", "mobilenext").returncode == 0
    # an earlier backfill of older days: the backfill's own pipeline has loaded before
    older = backfill("mobilenext", iso_ms(start - 6 * DAY_MS), iso_ms(start - 5 * DAY_MS),
                     "1d", None)
    assert older.ok, older.error
    end = iso_ms(at)[:-1] + "456Z"  # .123456: the sessions at .123 are inside [start, end)
    result = backfill("mobilenext", iso_ms(start - 2 * DAY_MS), end, "1d", None)
    assert result.ok, result.error
    loaded = loaded_sessions()
    marked = sorted(i for i, r in loaded.items() if r["deleted_at"] is not None)
    assert not marked, f"{len(marked)} live sessions marked deleted, e.g. {marked[:2]}"
    assert boundary <= loaded.keys()
    assert_equals_truth(mobilenext)


def test_backfill_logs_each_run_with_its_rows_and_the_high_water_mark(
        mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch) -> None:
    # A backfill appends its runs' log rows once, at its end: every run is still there, with
    # the rows it loaded and the high-water mark of what the warehouse holds.
    start = parse_iso_ms(START)
    monkeypatch.setenv("SOURCES__MOBILENEXT__START_DATE", iso_ms(start - 10 * DAY_MS))
    proc = run_cli("backfill", "mobilenext", "--start", iso_ms(start - 10 * DAY_MS),
                   "--end", iso_ms(start), "--chunk", "4d")
    assert proc.returncode == 0, proc.stderr
    logged = runs("mobilenext")
    assert [(r["mode"], r["status"], r["resource"]) for r in logged] == \
        [("backfill", "ok", "sessions")] * 3, logged
    assert len({r["run_id"] for r in logged}) == 3
    sessions = loaded_sessions()
    assert sum(r["rows_loaded"] for r in logged) == len(sessions) > 0
    newest = max(s["created_at"] for s in sessions.values())
    assert {r["high_water_mark"] for r in logged} == {newest}

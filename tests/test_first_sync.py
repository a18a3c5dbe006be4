"""A first sync loads history in loads sized by rows (`pipelines.first_sync`), then hands over
to incremental runs: exactly the truth, once, and a quiet run after it."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any, List, Tuple

import pytest

import pipelines.backfill as backfill_module
import pipelines.first_sync as first_sync_module
from pipelines.run import sync_source
from sandbox.core import parse_iso_ms
from sandbox.serve import START
from sandbox.sessionvision import SessionVisionApi
from tests.conftest import CLI, ROOT, assert_quiet_run, run_cli, runs
from tests.conftest import sessionvision_truth as assert_equals_truth

DAY_MS = 86_400_000
HANDOVER_LOOKBACK_MS = 48 * 3_600_000 + 60_000  # the events lookback of an incremental run


def _event_reads(api: SessionVisionApi) -> List[Tuple[str, str]]:
    """Each distinct (date_from, date_to) the events lists are read with, in order; noted
    by `api.before_request`."""
    reads: List[Tuple[str, str]] = []

    def note(request: Any) -> None:
        if request.path.endswith("/events"):
            window = (request.arg("date_from") or "", request.arg("date_to") or "")
            if window not in reads:
                reads.append(window)
    api.before_request = note
    return reads


def test_first_sync_loads_history_in_row_sized_loads_then_runs_quiet(
        sessionvision: SessionVisionApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backfill_module, "LOAD_ROWS", 3000)
    reads = _event_reads(sessionvision)
    try:
        result = sync_source("sessionvision")
    finally:
        sessionvision.before_request = None
    assert result.ok, result.error
    windows = [(parse_iso_ms(a), parse_iso_ms(b)) for a, b in reads if b]
    handover = [parse_iso_ms(a) for a, b in reads if not b]
    # history (from 2026-10-01, 10 days of visits) in several windowed loads, newest first,
    # then one incremental run reading only the lookback before the backfill began
    assert len(windows) >= 3, reads
    pairs = zip(windows[:-1], windows[1:], strict=True)
    assert all(newer[0] == older[1] for newer, older in pairs), reads
    assert windows[0][1] == parse_iso_ms(START), "history ends at the API's clock"
    assert handover == [parse_iso_ms(START) - HANDOVER_LOOKBACK_MS], reads
    loads = [r for r in runs("sessionvision") if r["resource"] == "events"]
    assert len(loads) == len(windows) + 1
    assert max(r["rows_loaded"] for r in loads) < 3 * 3000, "a load sized by history, not rows"
    data = assert_equals_truth(sessionvision)  # every record, once
    assert result.rows["events"] >= len(data["events"])
    assert_quiet_run(sessionvision, "sessionvision")
    sessionvision.advance(3600)  # later events arrive; the handed-over runs pick them up
    later = sync_source("sessionvision")
    assert later.ok, later.error
    assert_equals_truth(sessionvision)
    assert_quiet_run(sessionvision, "sessionvision")


def test_first_sync_killed_mid_history_resumes_by_the_day(
        sessionvision: SessionVisionApi) -> None:
    """A first sync killed while it loads its history's second load, run again, loads no
    finished day again, then hands over: every record once, and a quiet run after."""
    reads = _event_reads(sessionvision)
    proc: List[subprocess.Popen] = []
    note = sessionvision.before_request
    assert note is not None

    def note_and_kill(request: Any) -> None:
        note(request)
        if proc and len([w for w in reads if w[1]]) == 2:  # the second history load began
            os.kill(proc.pop().pid, signal.SIGKILL)
    sessionvision.before_request = note_and_kill
    try:
        killed = subprocess.Popen([CLI, "sync", "sessionvision"], cwd=ROOT,
                                  env=dict(os.environ), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        proc.append(killed)
        assert killed.wait(timeout=120) == -signal.SIGKILL
        first = reads[0]
        reads.clear()
        sessionvision.before_request = note
        rerun = run_cli("sync", "sessionvision")
    finally:
        sessionvision.before_request = None
    assert rerun.returncode == 0, rerun.stderr
    assert first not in reads, f"the finished first load was read again: {reads}"
    assert [w for w in reads if w[1]], "the unfinished history load was not read again"
    assert_equals_truth(sessionvision)  # every record, once
    assert_quiet_run(sessionvision, "sessionvision")


@pytest.mark.parametrize("destination,later", [("duckdb", 3600), ("parquet", 3600),
                                               ("parquet", 0)])
def test_first_sync_hand_over_writes_only_the_events_the_backfill_did_not_load(
        sessionvision: SessionVisionApi, monkeypatch: pytest.MonkeyPatch,
        destination: str, later: int) -> None:
    """The hand-over reads the 48 hours before `since` again, which the backfill loaded: it
    writes only the events the warehouse lacks (those of the `later` seconds after), not the
    overlap again (merged into a Delta table of all history, that cost the first sync twice
    its time); and the runs after it read the backfill's events back too (a quiet run)."""
    history = first_sync_module.load_history

    def then_time_passes(*args: Any) -> Any:
        done = history(*args)
        sessionvision.advance(later)  # events after `since`, for the hand-over
        return done
    monkeypatch.setattr(first_sync_module, "load_history", then_time_passes)
    result = sync_source("sessionvision", destination)
    assert result.ok, result.error
    data = assert_equals_truth(sessionvision, destination)  # every record, once
    # every event written once: the backfill's loads and the hand-over do not overlap
    assert result.rows["events"] == len(data["events"])
    assert_quiet_run(sessionvision, "sessionvision", destination)

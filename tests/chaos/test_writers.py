"""Chaos beside the faults: two writers at once, and a warehouse that cannot be written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from pipelines.lock import LOCKED_EXIT_CODE
from pipelines.run import make_pipeline
from pipelines.warehouse import resolve_location
from sandbox.mobilenext import MobileNextApi
from tests.conftest import CLI, ROOT, assert_equals_truth, run_cli


@pytest.mark.chaos
def test_two_writers_one_is_refused_and_the_result_equals_the_truth(
        mobilenext: MobileNextApi) -> None:
    mobilenext.advance(3 * 3600)
    # The first writer's first request is held until the second writer has finished, so the
    # first holds the source's lock (taken before any read) however slow the machine is.
    entered, release = threading.Event(), threading.Event()

    def hold(_request: object) -> None:
        entered.set()
        release.wait(120)

    mobilenext.before_request = hold
    try:
        first = subprocess.Popen([CLI, "sync", "mobilenext"], cwd=ROOT, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env={**os.environ, "SOURCES__HTTP__READ_TIMEOUT": "150"})
        assert entered.wait(120), "the first writer never reached the API"
        second = run_cli("backfill", "mobilenext", "--start", "2026-10-01", "--end",
                         "2026-10-05")
    finally:
        release.set()
        mobilenext.before_request = None
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == LOCKED_EXIT_CODE, second.stderr
    assert "another sessionsync run is writing this source" in second.stderr
    # reconcile now: deletions of older sessions are otherwise found on the daily scan
    assert run_cli("sync", "mobilenext",
                   SOURCES__MOBILENEXT__RECONCILE_EVERY_HOURS="0").returncode == 0
    assert_equals_truth(mobilenext)


@pytest.mark.chaos
def test_unwritable_warehouse_fails_clearly_keeps_state_and_recovers(
        mobilenext: MobileNextApi) -> None:
    assert run_cli("sync", "mobilenext").returncode == 0
    state = json.dumps(make_pipeline("mobilenext", "duckdb", None).state["sources"],
                       sort_keys=True)
    mobilenext.advance(6 * 3600)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time\n"
        "con = duckdb.connect(sys.argv[1])  # another process holds the file for writing\n"
        "print('held', flush=True); time.sleep(300)"), str(resolve_location("duckdb", None))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        # a writer waits for a busy warehouse (pipelines.sharing); here only briefly
        failed = run_cli("sync", "mobilenext", SESSIONSYNC__WAREHOUSE_WAIT_SECONDS="2")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "mobilenext" in errors[0], failed.stderr
    assert "Traceback" not in failed.stderr
    after = json.dumps(make_pipeline("mobilenext", "duckdb", None).state["sources"],
                       sort_keys=True)
    assert after == state, "state advanced past data that was not loaded"
    # reconcile now: deletions of older sessions are otherwise found on the daily scan
    assert run_cli("sync", "mobilenext",
                   SOURCES__MOBILENEXT__RECONCILE_EVERY_HOURS="0").returncode == 0
    assert_equals_truth(mobilenext)

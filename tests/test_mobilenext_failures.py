"""Faults, bad input and crashes: the sync survives what is transient, fails clearly on the
rest, keeps secrets out of every output, and never advances state past unloaded data."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from pipelines.run import make_pipeline, sync_source
from sandbox.core import Request
from sandbox.mobilenext import MobileNextApi
from tests.conftest import (
    CLI,
    ROOT,
    assert_equals_truth,
    loaded_sessions,
    pipeline_state,
    run_cli,
)


def test_survives_429s_5xx_resets_and_malformed_pages(mobilenext: MobileNextApi,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__MOBILENEXT__PAGE_SIZE", "100")
    mobilenext.faults.update(rate_429=0.2, rate_5xx=0.1, rate_reset=0.03, rate_malformed=0.03,
                             retry_after=1)
    result = sync_source("mobilenext")
    assert result.ok, result.error
    assert mobilenext.injected.get("429", 0) >= 2
    assert sum(n for k, n in mobilenext.injected.items() if k[0] == "5") >= 1
    assert_equals_truth(mobilenext)


def test_slow_responses_beyond_read_timeout_are_retried(mobilenext: MobileNextApi,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__HTTP__READ_TIMEOUT", "0.3")
    mobilenext.faults.update(rate_slow=0.3, slow_seconds=0.6)
    assert sync_source("mobilenext").ok
    assert mobilenext.injected.get("slow", 0) >= 1
    assert_equals_truth(mobilenext)


def test_wrong_key_fails_clearly_and_leaks_nothing(mobilenext: MobileNextApi,
                                                   tmp_path: Path) -> None:
    good = run_cli("sync", "mobilenext")
    assert good.returncode == 0, good.stderr
    state, rows = pipeline_state(), loaded_sessions()
    mobilenext.advance(3600)

    wrong = "mob_wrong_key_7d1e0c55aa"
    bad = run_cli("sync", "mobilenext", SOURCES__MOBILENEXT__API_KEY=wrong)
    assert bad.returncode != 0
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, bad.stderr
    assert "mobilenext" in lines[0] and "401" in lines[0]
    assert "Missing or invalid API key" in lines[0]
    assert pipeline_state() == state, "state moved although nothing was loaded"
    assert loaded_sessions() == rows

    api_key = os.environ["SOURCES__MOBILENEXT__API_KEY"]
    for secret in (wrong, api_key):
        assert secret not in bad.stdout + bad.stderr + good.stdout + good.stderr
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"secret written to {path}"


@pytest.mark.parametrize("setting, value, message", [
    ("PAGE_SIZE", "0", "page_size must be between 1 and 500"),
    ("START_DATE", "last tuesday", "setting start_date is invalid"),
    ("ORGANIZATION_IDS", '["org_nope"]', "not a member of organization org_nope"),
])
def test_bad_config_fails_with_one_line(mobilenext: MobileNextApi, setting: str, value: str,
                                         message: str) -> None:
    proc = run_cli("sync", "mobilenext", **{f"SOURCES__MOBILENEXT__{setting}": value})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: mobilenext: "), proc.stderr
    assert message in lines[0]


def test_missing_key_names_the_setting(mobilenext: MobileNextApi) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SOURCES__MOBILENEXT__API_KEY"}
    proc = subprocess.run([CLI, "sync", "mobilenext"], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 1
    assert "missing setting(s) api_key" in proc.stderr


def test_forbidden_org_fails_alone(mobilenext: MobileNextApi) -> None:
    # org_solo exists but the key is not a member of it; org_acme must still load
    proc = run_cli("sync", "mobilenext",
                   SOURCES__MOBILENEXT__ORGANIZATION_IDS='["org_solo", "org_acme"]')
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: mobilenext: the API key is not a member of organization org_solo"]
    assert_equals_truth(mobilenext, orgs=("org_acme",))


def test_repeated_page_stops_instead_of_looping(mobilenext: MobileNextApi,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__MOBILENEXT__PAGE_SIZE", "100")
    calls = {"n": 0}

    def repeat_from_third(request: Request) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            mobilenext.faults.update(rate_repeat=1.0)

    mobilenext.before_request = repeat_from_third
    result = sync_source("mobilenext")
    assert not result.ok
    assert "returned a cursor it returned before" in (result.error or "")
    assert mobilenext.count("/api/v1/sessions") < 10


def test_page_cap(mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__MOBILENEXT__PAGE_SIZE", "100")
    monkeypatch.setenv("SOURCES__HTTP__MAX_PAGES", "3")
    result = sync_source("mobilenext")
    assert not result.ok and "page cap of 3 pages" in (result.error or "")


def test_retries_are_bounded(mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__HTTP__MAX_RETRIES", "2")
    mobilenext.faults.update(fail_next=50)
    result = sync_source("mobilenext")
    assert not result.ok
    assert "HTTP 503" in (result.error or "") and "gave up after 2 retries" in (result.error or "")
    assert len(mobilenext.requests) == 3


def test_kill_9_mid_sync_then_rerun_loses_nothing(mobilenext: MobileNextApi,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__MOBILENEXT__PAGE_SIZE", "100")
    first = run_cli("sync", "mobilenext")
    assert first.returncode == 0, first.stderr
    mobilenext.advance(30 * 3600)
    proc = subprocess.Popen([CLI, "sync", "mobilenext"], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mobilenext.reset_stats()

    def kill_at_fifth(request: Request) -> None:
        if len(mobilenext.requests) == 5:
            os.kill(proc.pid, signal.SIGKILL)

    mobilenext.before_request = kill_at_fifth
    assert proc.wait(timeout=120) == -signal.SIGKILL
    mobilenext.before_request = None
    again = run_cli("sync", "mobilenext")
    assert again.returncode == 0, again.stderr
    assert_equals_truth(mobilenext)


def test_lost_working_dir_restores_state_from_the_warehouse(mobilenext: MobileNextApi,
                                                            tmp_path: Path) -> None:
    assert sync_source("mobilenext").ok
    shutil.rmtree(tmp_path / "pipelines")
    mobilenext.reset_stats()
    result = sync_source("mobilenext")
    assert result.ok and result.rows == {}
    # dlt restored the pipeline state from the destination's _dlt_pipeline_state table
    assert mobilenext.count("/api/v1/sessions") == 2, "state came back: no full re-read"


def test_sync_after_a_run_killed_mid_load_also_syncs_new_data(
        mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (found by the chaos suite): dlt's `run()` with packages left pending only
    loads them and skips extract, so a sync after a kill during load used to load stale data
    and miss everything since."""
    from pipelines.registry import source_factory

    monkeypatch.setenv("SOURCES__MOBILENEXT__RECONCILE_EVERY_HOURS", "0")  # exact deletions
    assert sync_source("mobilenext").ok
    mobilenext.advance(3600)
    pipeline = make_pipeline("mobilenext", "duckdb", None)
    pipeline.extract(source_factory("mobilenext")())  # killed after extract: a package waits
    assert pipeline.has_pending_data
    mobilenext.advance(3600)  # more sessions after the interrupted run
    result = sync_source("mobilenext")
    assert result.ok, result.error
    assert not make_pipeline("mobilenext", "duckdb", None).has_pending_data
    assert_equals_truth(mobilenext)


def test_a_load_that_carries_a_record_twice_keeps_one_row(
        mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (found by the chaos suite as duplicate rows): a load job re-run after a kill
    copies its rows into the staging table again; the merge must still keep one row per id."""
    import pyarrow as pa

    import sources.scan as driver  # the driver batches every source's partitioned scans
    from sources.batches import Batches

    class Twice(Batches):
        def flush(self) -> pa.Table | None:
            batch = super().flush()
            return None if batch is None else pa.concat_tables([batch, batch])

    monkeypatch.setenv("SOURCES__MOBILENEXT__RECONCILE_EVERY_HOURS", "0")  # exact deletions
    monkeypatch.setattr(driver, "Batches", Twice)
    assert sync_source("mobilenext").ok
    mobilenext.advance(3600)
    assert sync_source("mobilenext").ok
    assert_equals_truth(mobilenext)  # asserts every id once

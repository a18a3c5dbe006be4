"""Operability: every command run from a folder outside the repository with environment
variables alone, settings named in errors, logs, init, a shared DuckDB warehouse and its BI
copy, reset, alerts, schema changes, the sandbox's output and status for people."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import duckdb
import pytest

from pipelines import sharing
from pipelines.bi_copy import bi_path
from pipelines.lock import LOCKED_EXIT_CODE, source_lock
from pipelines.run import sync_source
from pipelines.warehouse import pipelines_dir, resolve_location
from sandbox.core import Served, parse_iso_ms
from sandbox.mobilenext import DEMO_KEY, MobileNextApi
from sandbox.serve import START
from sandbox.session_services import TENANTS, SessionServicesApi, token_for
from sandbox.sessionvision import DEMO_TOKEN, PROJECTS, SessionVisionApi
from tests.conftest import (
    CLI,
    MEMBER_ORGS,
    ROOT,
    Receiver,
    as_api,
    assert_equals_truth,
    isolate,
    loaded_sessions,
    truth_sessions,
)
from tests.conftest import sessionvision_truth as sv_equals_truth

SETTING_PREFIXES = ("SOURCES__", "SESSIONSYNC", "DESTINATION__", "SCHEDULES__", "ALERTS__",
                    "EXTRACT__", "DLT_")


class Elsewhere:
    """A folder outside the repository and an environment holding only what a user sets."""

    def __init__(self, folder: Path, env: Dict[str, str]) -> None:
        self.folder = folder
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
        self.env.update({"SOURCES__HTTP__BACKOFF_BASE": "0.01",
                         "SOURCES__HTTP__BACKOFF_MAX": "0.05", **env})

    def run(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, *args], cwd=self.folder, capture_output=True, text=True,
                              timeout=timeout, env={**self.env, **env})

    def popen(self, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen([CLI, *args], cwd=self.folder, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**self.env, **env})

    @property
    def warehouse(self) -> Path:
        return self.folder / "warehouse" / "sessionsync.duckdb"

    def query(self, sql: str, path: Optional[Path] = None) -> Any:
        with duckdb.connect(str(path or self.warehouse), read_only=True) as con:
            return con.execute(sql).fetchall()


def mobilenext_env(url: str) -> Dict[str, str]:
    return {"SOURCES__MOBILENEXT__BASE_URL": url, "SOURCES__MOBILENEXT__API_KEY": DEMO_KEY,
            "SOURCES__MOBILENEXT__START_DATE": "2026-09-01"}


def sessionvision_env(url: str) -> Dict[str, str]:
    return {"SOURCES__SESSIONVISION__BASE_URL": url,
            "SOURCES__SESSIONVISION__API_TOKEN": DEMO_TOKEN,
            "SOURCES__SESSIONVISION__PROJECT_IDS": json.dumps(list(PROJECTS)),
            "SOURCES__SESSIONVISION__START_DATE": "2026-09-01"}


@pytest.fixture
def mn_api() -> MobileNextApi:
    return MobileNextApi(parse_iso_ms(START), seed=11, sessions_per_day=80, history_days=10,
                         deletions_per_day=3)


@pytest.fixture
def mn(mn_api: MobileNextApi) -> Iterator[Served]:
    with Served(mn_api) as served:
        yield served


@pytest.fixture
def elsewhere(tmp_path_factory: pytest.TempPathFactory, mn: Served) -> Elsewhere:
    folder = tmp_path_factory.mktemp("elsewhere")
    assert ROOT not in folder.parents and not (folder / ".dlt").exists()
    return Elsewhere(folder, mobilenext_env(mn.url))


def warehouse_sessions(where: Elsewhere, path: Optional[Path] = None) -> Dict[str, Any]:
    with duckdb.connect(str(path or where.warehouse), read_only=True) as con:
        cur = con.execute("SELECT * FROM mobilenext.sessions WHERE deleted_at IS NULL")
        names = [d[0] for d in cur.description]
        return {r[0]: as_api(dict(zip(names, r, strict=True))) for r in cur.fetchall()}


def assert_sessions_equal_truth(where: Elsewhere, api: MobileNextApi,
                                path: Optional[Path] = None) -> None:
    truth = truth_sessions(api, MEMBER_ORGS)
    assert truth and warehouse_sessions(where, path) == truth


# -- runs anywhere, errors name the setting -------------------------------------------------


def test_sync_and_status_run_from_any_folder_with_env_vars_alone(
        elsewhere: Elsewhere, mn_api: MobileNextApi) -> None:
    synced = elsewhere.run("sync", "mobilenext")
    assert synced.returncode == 0, synced.stderr
    assert "mobilenext: ok (organizations=2, sessions=" in synced.stdout
    # working files where the README says: ./warehouse and ./var under the current folder
    assert elsewhere.warehouse.exists()
    assert list((elsewhere.folder / "var" / "pipelines").glob("duckdb-*/sessionsync_mobilenext"))
    assert_sessions_equal_truth(elsewhere, mn_api)
    status = elsewhere.run("status", "mobilenext", "--json")
    assert status.returncode == 0, status.stderr
    assert {e["resource"] for e in json.loads(status.stdout)} == {"organizations", "sessions"}


def test_sessionsync_home_holds_the_working_files(elsewhere: Elsewhere,
                                                  tmp_path: Path) -> None:
    home = tmp_path / "home"
    synced = elsewhere.run("sync", "mobilenext", SESSIONSYNC_HOME=str(home))
    assert synced.returncode == 0, synced.stderr
    assert (home / "warehouse" / "sessionsync.duckdb").exists()
    assert (home / "var" / "pipelines").is_dir()
    assert not (elsewhere.folder / "warehouse").exists()


def test_missing_setting_names_the_real_variable(elsewhere: Elsewhere) -> None:
    env = {k: v for k, v in elsewhere.env.items() if k != "SOURCES__MOBILENEXT__API_KEY"}
    elsewhere.env = env
    proc = elsewhere.run("sync", "mobilenext", "tagbase")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "error: mobilenext: missing setting(s) api_key: set SOURCES__MOBILENEXT__API_KEY "
        "(or api_key under [sources.mobilenext] in .dlt/secrets.toml)",
        "error: tagbase: missing setting(s) api_key, verification_log_url: set "
        "SOURCES__TAGBASE__API_KEY (or api_key under [sources.tagbase] in .dlt/secrets.toml); "
        "SOURCES__TAGBASE__VERIFICATION_LOG_URL (or verification_log_url under "
        "[sources.tagbase] in .dlt/config.toml)"], proc.stderr


@pytest.mark.parametrize("setting, value, expected", [
    ("SOURCES__MOBILENEXT__ORGANIZATION_IDS", "not-json",
     "setting organization_ids = 'not-json' is not a JSON list, e.g. [\"a\", \"b\"]; set "
     "SOURCES__MOBILENEXT__ORGANIZATION_IDS (or organization_ids under [sources.mobilenext] "
     "in .dlt/config.toml)"),
    ("SOURCES__MOBILENEXT__BASE_URL", "ftp://files.example.com",
     "setting base_url = 'ftp://files.example.com' is not an http(s) URL; set "
     "SOURCES__MOBILENEXT__BASE_URL (or base_url under [sources.mobilenext] in "
     ".dlt/config.toml)"),
    ("SOURCES__HTTP__MAX_RETRIES", "many",
     "setting max_retries = 'many' is not a number (int); set SOURCES__HTTP__MAX_RETRIES or "
     "SOURCES__MOBILENEXT__HTTP__MAX_RETRIES (or max_retries under [sources.http] in "
     ".dlt/config.toml)"),
])
def test_invalid_setting_is_refused_at_once_naming_it(elsewhere: Elsewhere, mn_api: MobileNextApi,
                                                      setting: str, value: str,
                                                      expected: str) -> None:
    started = time.monotonic()
    proc = elsewhere.run("sync", "mobilenext", **{setting: value})  # type: ignore[arg-type]
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: mobilenext: {expected}"]
    assert len(mn_api.requests) == 0, "a refused setting must not reach the API"
    assert time.monotonic() - started < 20, "refused at once, not after retries"


def test_extract_order_is_not_a_setting(elsewhere: Elsewhere) -> None:
    """Session Services' tickets rely on extract order: a user value cannot change it."""
    probe = ("import os; from pipelines.run import make_pipeline\n"
             "from dlt.extract.pipe_iterator import PipeIterator\n"
             "p = make_pipeline('session_services', 'duckdb', None)\n"
             "it = PipeIterator.from_pipes([])\n"
             "print(it._next_item_mode)")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere.folder,
                          capture_output=True, text=True, timeout=120,
                          env={**elsewhere.env, "EXTRACT__NEXT_ITEM_MODE": "round_robin",
                               "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "fifo"


# -- one warehouse file, many sources and readers -------------------------------------------


@pytest.fixture
def two_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                mn: Served) -> Iterator[SessionVisionApi]:
    """Mobile Next and sessionvision sandboxes, both configured into one DuckDB file."""
    api = SessionVisionApi(parse_iso_ms(START), seed=3, visits_per_day=120, history_days=10)
    with Served(api) as served:
        isolate(monkeypatch, tmp_path, {**mobilenext_env(mn.url), **sessionvision_env(served.url),
                                        "SOURCES__HTTP__READ_TIMEOUT": "5",
                                        # every run finds deletions, so truth holds each time
                                        "SOURCES__MOBILENEXT__RECONCILE_EVERY_HOURS": "0"})
        yield api


def cli(*args: str, cwd: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([CLI, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


def finish(proc: subprocess.Popen, timeout: float = 300,
           seen: str = "") -> Tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, seen + err


def stderr_until(proc: subprocess.Popen, text: str, timeout: float = 120) -> str:
    """Read the process's stderr line by line until a line holds `text`; returns what it read."""
    assert proc.stderr is not None
    seen, deadline = "", time.monotonic() + timeout
    while text not in seen:
        ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no {text!r} on stderr in {timeout}s: {seen!r}"
        line = proc.stderr.readline()
        assert line, f"stderr closed before {text!r}: {seen!r}"
        seen += line
    return seen


def test_two_processes_sync_two_sources_into_one_duckdb_file_at_once(
        two_sources: SessionVisionApi, mn_api: MobileNextApi, tmp_path: Path) -> None:
    # Before the shared warehouse lock: "mobilenext: failed during load: IOException: IO Error:
    # Could not set lock on file ..." in the first or second round.
    assert sync_source("mobilenext").ok and sync_source("sessionvision").ok
    for _ in range(2):
        mn_api.advance(6 * 3600)
        two_sources.advance(6 * 3600)
        procs = [cli("sync", name, cwd=tmp_path) for name in ("mobilenext", "sessionvision")]
        for code, _out, err in [finish(p) for p in procs]:
            assert code == 0, err
        assert_equals_truth(mn_api)
        sv_equals_truth(two_sources)
    # the same source twice is still refused at once
    with source_lock("sessionvision", pipelines_dir("duckdb", resolve_location("duckdb", None))):
        code, _, err = finish(cli("sync", "sessionvision", cwd=tmp_path))
    assert code == LOCKED_EXIT_CODE, err


def test_a_writer_waits_for_a_busy_warehouse_says_so_then_runs(
        mobilenext: MobileNextApi, tmp_path: Path) -> None:
    location = resolve_location("duckdb", None)
    with sharing.warehouse_access("test", "duckdb", location):
        waiting = cli("sync", "mobilenext", cwd=tmp_path)
        said = stderr_until(waiting, "waiting up to 1800s")
        time.sleep(1)
        assert waiting.poll() is None, "the writer must wait, not fail"
        assert mobilenext.requests == [], "it waits before it reads anything"
    code, out, err = finish(waiting, seen=said)
    assert code == 0, err
    assert f"mobilenext: warehouse {resolve_location('duckdb', None)} is busy (pid {os.getpid()}" \
        in err
    assert_equals_truth(mobilenext)


def test_a_writer_waits_for_a_reader_holding_the_file_open(
        mobilenext: MobileNextApi, tmp_path: Path) -> None:
    assert sync_source("mobilenext").ok
    reader = duckdb.connect(str(resolve_location("duckdb", None)), read_only=True)  # a BI tool
    waiting = cli("sync", "mobilenext", cwd=tmp_path)
    said = stderr_until(waiting, "is held open by another program")
    time.sleep(1)
    assert waiting.poll() is None, "the writer must wait for the reader, not fail"
    reader.close()
    code, out, err = finish(waiting, seen=said)
    assert code == 0, err
    assert_equals_truth(mobilenext)


def test_the_wait_is_bounded_and_names_its_setting(mobilenext: MobileNextApi,
                                                   tmp_path: Path) -> None:
    with sharing.warehouse_access("test", "duckdb", resolve_location("duckdb", None)):
        code, _, err = finish(cli("sync", "mobilenext", cwd=tmp_path,
                                  SESSIONSYNC__WAREHOUSE_WAIT_SECONDS="1"))
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("error: mobilenext: warehouse ")
    assert "stayed busy for 1s; gave up. Set SESSIONSYNC__WAREHOUSE_WAIT_SECONDS" in err


def test_bi_copy_is_published_atomically_and_readable_through_a_sync(
        mobilenext: MobileNextApi, tmp_path: Path) -> None:
    assert sync_source("mobilenext").ok
    location = resolve_location("duckdb", None)
    bi = bi_path(location)
    assert bi.name == "warehouse.bi.duckdb" and bi.parent == location.parent
    reader = duckdb.connect(str(bi), read_only=True)  # a BI tool holding the copy open
    before = reader.execute("SELECT count(*) FROM mobilenext.sessions").fetchall()[0][0]
    assert before == len(loaded_sessions())
    mobilenext.advance(2 * 86400)
    synced = run_cli_in(tmp_path, "sync", "mobilenext")
    assert synced.returncode == 0, synced.stderr
    # the open reader still sees the copy it opened, whole; a new one sees this sync's rows
    assert reader.execute("SELECT count(*) FROM mobilenext.sessions").fetchall()[0][0] == before
    reader.close()
    with duckdb.connect(str(bi), read_only=True) as fresh:
        after = fresh.execute("SELECT count(*) FROM mobilenext.sessions").fetchall()[0][0]
    assert after == len(loaded_sessions()) > before
    assert not list(location.parent.glob(".*.tmp")), "no half-written copy left behind"


def run_cli_in(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], cwd=folder, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


# -- reset ----------------------------------------------------------------------------------


def test_reset_asks_drops_records_and_the_next_sync_reloads(elsewhere: Elsewhere,
                                                            mn_api: MobileNextApi) -> None:
    assert elsewhere.run("sync", "mobilenext").returncode == 0
    full_scan = mn_api.count("/api/v1/sessions")
    mn_api.reset_stats()
    refused = subprocess.run([CLI, "reset", "mobilenext", "--resource", "sessions"],
                             cwd=elsewhere.folder, input="n\n", capture_output=True, text=True,
                             env=elsewhere.env, timeout=120)
    assert refused.returncode == 1 and "reset cancelled" in refused.stderr
    assert elsewhere.query("SELECT count(*) FROM mobilenext.sessions")[0][0] > 0

    done = elsewhere.run("reset", "mobilenext", "--resource", "sessions", "--yes")
    assert done.returncode == 0, done.stderr
    assert "mobilenext: reset sessions; dropped sessions" in done.stdout
    tables = {t for (t,) in elsewhere.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'mobilenext'")}
    assert "sessions" not in tables and "organizations" in tables
    logged = elsewhere.query("SELECT resource, mode, status FROM sessionsync_ops.sessionsync_runs "
                             "WHERE mode = 'reset'")
    assert logged == [("sessions", "reset", "reset")]

    again = elsewhere.run("sync", "mobilenext")
    assert again.returncode == 0, again.stderr
    assert mn_api.count("/api/v1/sessions") >= full_scan, "sessions reloaded from the start"
    assert_sessions_equal_truth(elsewhere, mn_api)


def test_reset_of_a_whole_source_and_refused_while_it_syncs(elsewhere: Elsewhere,
                                                            mn_api: MobileNextApi) -> None:
    assert elsewhere.run("sync", "mobilenext").returncode == 0
    folder = next((elsewhere.folder / "var" / "pipelines").glob("duckdb-*"))
    with source_lock("mobilenext", folder):
        busy = elsewhere.run("reset", "mobilenext", "--yes")
    assert busy.returncode == LOCKED_EXIT_CODE
    assert "another sessionsync run is writing this source" in busy.stderr
    assert elsewhere.query("SELECT count(*) FROM mobilenext.sessions")[0][0] > 0

    done = elsewhere.run("reset", "mobilenext", "-y")
    assert done.returncode == 0, done.stderr
    tables = {t for (t,) in elsewhere.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'mobilenext' "
        "AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\'")}
    assert tables == set()
    assert elsewhere.run("sync", "mobilenext").returncode == 0
    assert_sessions_equal_truth(elsewhere, mn_api)
    unknown = elsewhere.run("reset", "mobilenext", "--resource", "nope", "--yes")
    assert unknown.returncode == 1
    assert "mobilenext: no resource nope in the warehouse" in unknown.stderr


# -- alerts ---------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=1)
    yield r
    r.close()


def test_partial_run_alerts_the_webhook_with_retries(elsewhere: Elsewhere,
                                                     receiver: Receiver) -> None:
    proc = elsewhere.run("sync", "mobilenext", ALERTS__WEBHOOK_URL=receiver.url,
                         SOURCES__MOBILENEXT__ORGANIZATION_IDS='["org_solo", "org_acme"]')
    assert proc.returncode == 1
    assert receiver.attempts == 3, "the first post got a 500 and was retried"
    by_resource = {b["resource"]: b for b in receiver.bodies}
    assert set(by_resource) == {"organizations", "sessions"}
    body = by_resource["sessions"]
    run_id = elsewhere.query("SELECT DISTINCT run_id FROM sessionsync_ops.sessionsync_runs")
    assert body["kind"] == "run" and body["source"] == "mobilenext"
    assert body["status"] == "partial" and [(body["run_id"],)] == run_id
    assert body["error"] == "mobilenext: the API key is not a member of organization org_solo"
    assert isinstance(body["lag_seconds"], float)
    assert DEMO_KEY not in json.dumps(receiver.bodies)


def test_status_past_max_lag_alerts(elsewhere: Elsewhere, receiver: Receiver) -> None:
    assert elsewhere.run("sync", "mobilenext").returncode == 0
    status = elsewhere.run("status", "mobilenext", ALERTS__WEBHOOK_URL=receiver.url,
                           SOURCES__MOBILENEXT__MAX_LAG="1s")
    assert status.returncode == 1
    stale = [b for b in receiver.bodies if b["kind"] == "stale"]
    assert [b["resource"] for b in stale] == ["sessions"] and stale[0]["lag_seconds"] > 1


def test_an_unreachable_webhook_never_fails_or_blocks_a_sync(elsewhere: Elsewhere) -> None:
    dead = Receiver()
    url = dead.url
    dead.close()  # nothing listens there now
    started = time.monotonic()
    proc = elsewhere.run("sync", "mobilenext", ALERTS__WEBHOOK_URL=url,
                         SOURCES__MOBILENEXT__ORGANIZATION_IDS='["org_solo", "org_acme"]')
    assert proc.returncode == 1  # partial, as without alerts
    assert "mobilenext: ok" not in proc.stdout and "partly loaded" in proc.stdout
    assert "alert for mobilenext.sessions not delivered to 127.0.0.1 after 4 attempts" \
        in proc.stderr
    assert "/hook" not in proc.stderr, "the webhook URL (it may hold a token) is not logged"
    assert time.monotonic() - started < 60


# -- schema changes -------------------------------------------------------------------------


@pytest.fixture
def session_services(monkeypatch: pytest.MonkeyPatch,
                     tmp_path: Path) -> Iterator[SessionServicesApi]:
    api = SessionServicesApi(parse_iso_ms(START), seed=5, orders_per_day=20, history_days=5)
    with Served(api) as served:
        isolate(monkeypatch, tmp_path, {
            "SOURCES__SESSION_SERVICES__BASE_URL": served.url,
            "SOURCES__SESSION_SERVICES__TENANT_TOKENS": json.dumps(
                {t: token_for(t) for t in TENANTS}),
            "SOURCES__SESSION_SERVICES__START_DATE": "2026-09-01"})
        yield api


def test_a_new_api_field_is_recorded_as_a_schema_change(
        session_services: SessionServicesApi, caplog: pytest.LogCaptureFixture) -> None:
    assert sync_source("session_services").ok
    with duckdb.connect(str(resolve_location("duckdb", None)), read_only=True) as con:
        first = con.execute("SELECT DISTINCT table_name FROM sessionsync_ops.schema_changes "
                            "WHERE new_table").fetchall()
    assert ("venues",) in first and ("orders",) in first
    tenant = session_services.tenants[next(iter(TENANTS))]
    session_services.advance(60)
    for venue in tenant.venues.by_id.values():  # the API starts sending a new field
        session_services._touch(venue, accessibility="step-free")
    session_services.advance(60)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sessionsync"):
        result = sync_source("session_services")
    assert result.ok, result.error
    notices = [r.getMessage() for r in caplog.records if r.getMessage().startswith("notice:")]
    assert notices == ["notice: session_services: schema changed: new columns "
                       "venues.accessibility (text) (see sessionsync_ops.schema_changes)"]
    with duckdb.connect(str(resolve_location("duckdb", None)), read_only=True) as con:
        rows = con.execute("SELECT source, table_name, column_name, data_type, new_table, "
                           "run_id, changed_at IS NOT NULL FROM sessionsync_ops.schema_changes "
                           "WHERE NOT new_table").fetchall()
    assert rows == [("session_services", "venues", "accessibility", "text", False,
                     result.run_id, True)]


# -- the other commands, from elsewhere: schedule, status, init, backfill, sandbox, demo ---


def test_schedule_logs_one_line_per_run_and_resource_and_status_shows_a_table(
        elsewhere: Elsewhere, mn_api: MobileNextApi) -> None:
    proc = elsewhere.popen("schedule", SESSIONSYNC__ENABLED_SOURCES='["mobilenext"]',
                           SCHEDULES__MOBILENEXT__INTERVAL_SECONDS="2")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not elsewhere.warehouse.exists():
        time.sleep(0.5)
    time.sleep(6)  # a first run and a few quiet ones
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.startswith("sync mobilenext: interval[0:00:02], next run ")
    assert "HTTP Request" not in err and "GET " not in err, "no per-request lines at INFO"
    lines = err.splitlines()
    first = [line for line in lines if "mobilenext.sessions: ok, sessions=" in line]
    assert first, err
    assert any(line.endswith("mobilenext: ok (nothing new)") for line in lines), err
    assert any("mobilenext: ok (organizations=2, sessions=" in line for line in lines), err
    quiet = [line for line in lines if line.endswith("mobilenext: ok (nothing new)")]
    assert len(quiet) >= 2, "a quiet run is one line"
    assert not [line for line in lines if "nothing new (run" in line], "quiet resources: DEBUG"
    assert len(lines) <= 3 * (len(quiet) + 1) + 12, f"the journal stays small: {err}"

    verbose = elsewhere.run("--verbose", "sync", "mobilenext")
    assert verbose.returncode == 0
    assert "HTTP Request: GET" in verbose.stderr, "per-request lines with --verbose"

    table = elsewhere.run("status", "mobilenext", "--warehouse",
                          str(elsewhere.warehouse), COLUMNS="200")
    assert table.returncode == 0, table.stderr
    text = table.stdout
    for header in ("source", "resource", "rows", "last ok", "lag", "next run", "last error"):
        assert header in text
    sessions = next(line for line in text.splitlines() if " sessions " in line)
    assert f"{len(warehouse_sessions(elsewhere)):,}" in sessions
    assert "None" not in text
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert sessions.count(today) == 2, sessions  # last ok and the next scheduled run


def test_init_writes_templates_and_refuses_to_overwrite(elsewhere: Elsewhere) -> None:
    made = elsewhere.run("init", "site", "--source", "mobilenext", "--source", "tagbase")
    assert made.returncode == 0, made.stderr
    config = (elsewhere.folder / "site" / ".dlt" / "config.toml").read_text()
    secrets = (elsewhere.folder / "site" / ".dlt" / "secrets.toml").read_text()
    assert 'enabled_sources = ["mobilenext", "tagbase"]' in config
    assert "[sources.tagbase]" in config and "[sources.sessionvision]" not in config
    assert "SOURCES__MOBILENEXT__API_KEY" in secrets
    again = elsewhere.run("init", "site")
    assert again.returncode == 1
    assert "exist already; not overwriting" in again.stderr
    assert (elsewhere.folder / "site" / ".dlt" / "config.toml").read_text() == config
    # the folder's settings are used when sessionsync runs there (or with SESSIONSYNC_HOME)
    (elsewhere.folder / "site" / ".dlt" / "config.toml").write_text(
        config.replace('enabled_sources = ["mobilenext", "tagbase"]',
                       'enabled_sources = ["mobilenext"]'))
    synced = elsewhere.run("sync", SESSIONSYNC_HOME=str(elsewhere.folder / "site"))
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.startswith("mobilenext: ok")
    assert (elsewhere.folder / "site" / "warehouse" / "sessionsync.duckdb").exists()


def test_backfill_runs_from_elsewhere(elsewhere: Elsewhere, mn_api: MobileNextApi) -> None:
    proc = elsewhere.run("backfill", "mobilenext", "--start", "2026-10-20", "--chunk", "4d")
    assert proc.returncode == 0, proc.stderr
    assert "mobilenext: backfill ok" in proc.stdout


def test_sandbox_prints_plain_export_lines_and_an_env_file(elsewhere: Elsewhere) -> None:
    env_file = elsewhere.folder / "sandbox.env"
    proc = elsewhere.popen("sandbox", "--free-ports", "--env-file", str(env_file),
                           COLUMNS="80")
    assert proc.stdout is not None
    lines: List[str] = []
    while len([x for x in lines if x.startswith("export ")]) < 14:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        lines.append(line.rstrip("\n"))
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    exports = [x for x in lines if x.startswith("export ")]
    tokens = next(x for x in exports if "TENANT_TOKENS" in x)
    assert len(tokens) > 80, "the long line is printed whole, not wrapped at 80 columns"
    assert env_file.read_text().splitlines() == exports
    shell = subprocess.run(["bash", "-c", f"source {env_file} && "
                            "echo \"$SOURCES__SESSION_SERVICES__TENANT_TOKENS\""],
                           capture_output=True, text=True, timeout=30)
    assert set(json.loads(shell.stdout)) == set(TENANTS)


def test_demo_runs_from_elsewhere(elsewhere: Elsewhere) -> None:
    proc = elsewhere.run("demo", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "demo finished" in proc.stdout
    assert elsewhere.warehouse.exists()


def test_help_shows_every_command_summary_whole(elsewhere: Elsewhere) -> None:
    proc = elsewhere.run("--help", COLUMNS="200")
    assert proc.returncode == 0
    schedule = next(line for line in proc.stdout.splitlines() if " schedule " in line)
    assert "()" not in schedule and "cron or interval_seconds" in schedule
    for command in ("sync", "backfill", "status", "reset", "init", "sandbox", "demo"):
        assert f" {command} " in proc.stdout

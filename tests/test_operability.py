"""Operability: every command run from a folder outside the repository with environment
variables alone, settings named in errors, logs, init, a shared DuckDB warehouse and its BI
copy, reset, alerts, schema changes, the sandbox's output and status for people."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import duckdb
import pytest

from sandbox.core import Served, parse_iso_ms
from sandbox.mobilenext import DEMO_KEY, MobileNextApi
from sandbox.serve import START
from sandbox.sessionvision import DEMO_TOKEN, PROJECTS, SessionVisionApi
from tests.conftest import MEMBER_ORGS, as_api, truth_sessions

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "sessionsync")
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
    proc = elsewhere.run("sync", "mobilenext", **{setting: value})
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

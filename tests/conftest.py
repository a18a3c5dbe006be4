"""Fixtures: a seeded sandbox on a real socket, an isolated warehouse and dlt working dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from pipelines.warehouse import connect, resolve_location
from sandbox.core import Served, iso_ms, parse_iso_ms
from sandbox.mobilenext import DEMO_KEY, MobileNextApi
from sandbox.serve import START

MEMBER_ORGS = ("org_acme", "org_beta")  # the orgs DEMO_KEY can see
ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "sessionsync")


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`sessionsync ARGS` in a process of its own, with `env` added to the environment."""
    return subprocess.run([CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--chaos-runs", type=int, default=2,
                     help="rounds per source in tests/chaos (default 2; soak with 200)")
    parser.addoption("--chaos-seed", type=int, default=None,
                     help="first seed of the chaos rounds (default: random, printed)")


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Dict[str, str]) -> None:
    """Point sessionsync at a warehouse and dlt working folder of its own under `tmp_path`,
    with short retry backoff, plus a source's `settings` (env var -> value)."""
    for key, value in {
        "SOURCES__HTTP__BACKOFF_BASE": "0.01",
        "SOURCES__HTTP__BACKOFF_MAX": "0.05",
        "SESSIONSYNC__PIPELINES_DIR": str(tmp_path / "pipelines"),
        "SESSIONSYNC__WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "SESSIONSYNC__FILE_WAREHOUSE": str(tmp_path / "files"),
        **settings,
    }.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def mobilenext_api() -> Iterator[MobileNextApi]:
    """A small, seeded Mobile Next world (about 1,300 sessions over 10 days)."""
    yield MobileNextApi(parse_iso_ms(START), seed=11, sessions_per_day=80, history_days=10,
                        deletions_per_day=3)


@pytest.fixture
def mobilenext(mobilenext_api: MobileNextApi, monkeypatch: pytest.MonkeyPatch,
               tmp_path: Path) -> Iterator[MobileNextApi]:
    """The sandbox API served on 127.0.0.1, with sessionsync configured to sync it."""
    with Served(mobilenext_api) as served:
        isolate(monkeypatch, tmp_path, {
            "SOURCES__MOBILENEXT__BASE_URL": served.url,
            "SOURCES__MOBILENEXT__API_KEY": DEMO_KEY,
            "SOURCES__MOBILENEXT__ORGANIZATION_IDS": "[]",
            "SOURCES__MOBILENEXT__START_DATE": "2026-09-01",
            "SOURCES__HTTP__READ_TIMEOUT": "2",
        })
        mobilenext_api.url = served.url  # type: ignore[attr-defined]
        yield mobilenext_api


def truth_sessions(api: MobileNextApi, orgs: tuple = MEMBER_ORGS) -> Dict[str, Dict[str, Any]]:
    """Every live session the API holds for `orgs`, by id."""
    return {s["id"]: s for org in orgs for s in api.truth(org)}


def table_rows(table: str, destination: str = "duckdb") -> Dict[str, Dict[str, Any]]:
    """Every row of `schema.table` in the warehouse, by id (asserting ids are unique)."""
    with connect(destination, resolve_location(destination, None)) as con:
        cur = con.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), f"duplicate ids in {table}"
    return {r["id"]: r for r in rows}


def load_count(source: str) -> int:
    """Load packages dlt has committed to the DuckDB warehouse for `source`."""
    with connect("duckdb", resolve_location("duckdb", None)) as con:
        return int(con.execute(f"SELECT count(*) FROM {source}._dlt_loads").fetchall()[0][0])


def loaded_sessions(destination: str = "duckdb") -> Dict[str, Dict[str, Any]]:
    """Every row of mobilenext.sessions in the warehouse, by id."""
    return table_rows("mobilenext.sessions", destination)


def as_api(row: Dict[str, Any]) -> Dict[str, Any]:
    """A warehouse row in the API's shape, to compare field by field with the truth."""
    def ts(value: Any) -> Any:
        return None if value is None else iso_ms(int(value.timestamp() * 1000 + 0.5))

    return {
        "id": row["id"], "organization": row["organization"], "user": row["user"],
        "device": {"id": row["device__id"], "platform": row["device__platform"],
                   "type": row["device__type"], "name": row["device__name"],
                   "osVersion": row["device__os_version"]},
        "createdAt": ts(row["created_at"]), "releasedAt": ts(row["released_at"]),
    }


def assert_equals_truth(api: MobileNextApi, destination: str = "duckdb",
                        orgs: tuple = MEMBER_ORGS) -> Dict[str, Any]:
    """The warehouse's live sessions are exactly the API's, field for field; deleted ones are
    marked. Returns the loaded rows."""
    truth = truth_sessions(api, orgs)
    loaded = loaded_sessions(destination)
    live = {i: r for i, r in loaded.items() if r["deleted_at"] is None}
    assert truth, "the sandbox holds no sessions: this test would prove nothing"
    missing = truth.keys() - live.keys()
    extra = live.keys() - truth.keys()
    assert not missing, f"{len(missing)} sessions missing, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} sessions live in the warehouse but gone upstream"
    diff = [i for i in truth if as_api(live[i]) != truth[i]]
    assert not diff, f"{len(diff)} differ: {as_api(live[diff[0]])} != {truth[diff[0]]}"
    return loaded


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One real Postgres server (the pgserver wheel's binaries) for the test session."""
    from tests.servers import start_postgres

    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def postgres(postgres_server: Any, monkeypatch: pytest.MonkeyPatch, request: Any) -> Any:
    """A fresh database on the shared server, set as dlt's postgres destination credentials."""
    import re

    database = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:50]
    postgres_server.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    postgres_server.execute(f'CREATE DATABASE "{database}"')
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_server.dsn(database))
    return postgres_server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """One S3-compatible server (moto's standalone server) on 127.0.0.1 for the session."""
    from tests.servers import start_s3

    server = start_s3()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server: Any, monkeypatch: pytest.MonkeyPatch, request: Any) -> Any:  # after a sandbox
    """A fresh bucket, set as the file warehouse `s3://<bucket>/warehouse` with dlt's
    filesystem credentials."""
    import re

    bucket = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    for key, value in s3_server.settings(bucket).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SESSIONSYNC__FILE_WAREHOUSE", f"s3://{bucket}/warehouse")
    s3_server.bucket = bucket
    return s3_server


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 500 to the first `fail_first` posts."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: List[Dict[str, Any]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= fail_first:
                    self.send_response(500)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""Fixtures and helpers every test shares: each source's seeded sandbox on a real socket with an
isolated warehouse and dlt working dir, its truth comparison, the CLI in a process, the
warehouse read back, and the "a second run writes nothing" check."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Dict, Iterator, List, Tuple

import pytest

if TYPE_CHECKING:
    from tests.bi import World

from pipelines.warehouse import connect, resolve_location
from sandbox.core import Served, iso_ms, parse_iso_ms
from sandbox.mobilenext import DEMO_KEY, MobileNextApi
from sandbox.serve import START
from sandbox.session_services import TENANTS, SessionServicesApi, token_for
from sandbox.sessionvision import DEMO_TOKEN, PROJECTS, SessionVisionApi
from sandbox.tagbase import DEMO_KEY as TAGBASE_KEY
from sandbox.tagbase import TagbaseApi

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


@contextmanager
def serving(api: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
            settings: Callable[[str], Dict[str, str]]) -> Iterator[Any]:
    """A sandbox `api` served on 127.0.0.1 (its URL also in `api.url`), with sessionsync
    isolated under `tmp_path` (`isolate`) and configured by `settings(url)`."""
    with Served(api) as served:
        isolate(monkeypatch, tmp_path, settings(served.url))
        api.url = served.url
        yield api


@pytest.fixture
def mobilenext_api() -> Iterator[MobileNextApi]:
    """A small, seeded Mobile Next world (about 1,300 sessions over 10 days)."""
    yield MobileNextApi(parse_iso_ms(START), seed=11, sessions_per_day=80, history_days=10,
                        deletions_per_day=3)


@pytest.fixture
def mobilenext(mobilenext_api: MobileNextApi, monkeypatch: pytest.MonkeyPatch,
               tmp_path: Path) -> Iterator[MobileNextApi]:
    """The sandbox API served on 127.0.0.1, with sessionsync configured to sync it."""
    with serving(mobilenext_api, monkeypatch, tmp_path, lambda url: {
        "SOURCES__MOBILENEXT__BASE_URL": url,
        "SOURCES__MOBILENEXT__API_KEY": DEMO_KEY,
        "SOURCES__MOBILENEXT__ORGANIZATION_IDS": "[]",
        "SOURCES__MOBILENEXT__START_DATE": "2026-09-01",
        "SOURCES__HTTP__READ_TIMEOUT": "2",
    }):
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


def load_count(source: str, destination: str = "duckdb") -> int:
    """Load packages dlt has committed to the warehouse for `source`."""
    location = resolve_location(destination, None)
    if destination != "parquet":
        with connect(destination, location) as con:
            return int(con.execute(f"SELECT count(*) FROM {source}._dlt_loads").fetchall()[0][0])
    if isinstance(location, Path):
        return len(list((location / source / "_dlt_loads").iterdir()))
    from pipelines.remote import object_store

    fs, _ = object_store(location)
    return len(fs.ls(f"{location}/{source}/_dlt_loads", refresh=True))


def assert_quiet_run(api: Any, source: str, destination: str = "duckdb") -> Any:
    """The next run of `source`, with nothing new upstream since the last, writes nothing:
    it succeeds, loads no row and commits no load package (not even a state-only one).

    The sandbox's request log is cleared first, so the caller can then bound what the quiet
    run read. Returns its `SyncResult`.
    """
    from pipelines.run import sync_source

    api.reset_stats()
    loads = load_count(source, destination)
    result = sync_source(source, destination)
    assert result.ok, result.error
    assert result.rows == {}, f"{source}: a run with nothing new loaded {result.rows}"
    assert load_count(source, destination) == loads, f"{source}: a quiet run wrote a package"
    return result


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


# Session Services: two tenants, one token each
SS_TABLES = ("venues", "events", "admissions", "orders", "tickets")


@pytest.fixture
def session_services(monkeypatch: pytest.MonkeyPatch,
                     tmp_path: Path) -> Iterator[SessionServicesApi]:
    """Two tenants, 20 days of orders, served on 127.0.0.1 and configured to sync."""
    api = SessionServicesApi(parse_iso_ms(START), seed=5, orders_per_day=60, history_days=20)
    yield from serve_session_services(api, monkeypatch, tmp_path)


def serve_session_services(api: SessionServicesApi, monkeypatch: pytest.MonkeyPatch,
                           tmp_path: Path, start_date: str = "2026-09-01"
                           ) -> Iterator[SessionServicesApi]:
    """`api` served on 127.0.0.1, with sessionsync configured to sync every tenant."""
    tokens = json.dumps({t: token_for(t) for t in TENANTS})
    with serving(api, monkeypatch, tmp_path, lambda url: {
        "SOURCES__SESSION_SERVICES__BASE_URL": url,
        "SOURCES__SESSION_SERVICES__TENANT_TOKENS": tokens,
        "SOURCES__SESSION_SERVICES__START_DATE": start_date,
    }):
        yield api


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _flat_record(record: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """A record the way dlt stores it: nested objects flattened with `__`, lists left out."""
    out: Dict[str, Any] = {}
    for key, value in record.items():
        name = prefix + _snake(key)
        if isinstance(value, dict):
            out.update(_flat_record(value, name + "__"))
        elif not isinstance(value, list) and value is not None:
            out[name] = value
    return out


def _ss_value(v: Any) -> Any:
    if hasattr(v, "timestamp"):
        return iso_ms(round(v.timestamp() * 1000))
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def session_services_rows(table: str, destination: str = "duckdb") -> Dict[str, Dict[str, Any]]:
    """Rows of `session_services.<table>` by id."""
    return table_rows(f"session_services.{table}", destination)


def session_services_truth(api: SessionServicesApi, destination: str = "duckdb",
                           tenants: tuple = tuple(TENANTS)) -> Dict[str, Dict[str, Any]]:
    """Every record of every table equals the API's, field for field, under its own tenant."""
    everything = {}
    for table in SS_TABLES:
        rows = session_services_rows(table, destination)
        truth = {r["id"]: (t, r) for t in tenants for r in api.truth(t, table)}
        assert truth, f"the sandbox has no {table}: the test would prove nothing"
        missing = truth.keys() - rows.keys()
        assert not missing, f"{len(missing)} {table} missing, e.g. {sorted(missing)[:2]}"
        extra = rows.keys() - truth.keys()
        assert not extra, f"{len(extra)} {table} in the warehouse that the API does not hold"
        for rid, (tenant, record) in truth.items():
            row = rows[rid]
            assert row["tenant_id"] == tenant, f"{table} {rid} under the wrong tenant"
            for col, want in _flat_record(record).items():
                got = row[col]
                assert _ss_value(got) == _ss_value(want), f"{table} {rid}.{col}: {got} != {want}"
            if table == "events":
                assert (row["deleted_at"] is None) == ("deletedAt" not in record), rid
        everything[table] = rows
    with connect(destination, resolve_location(destination, None)) as con:
        lines = con.execute("SELECT order_id, line, admission_id, quantity, price "
                            "FROM session_services.orders__items").fetchall()
    want = [(o["id"], n, i["admissionId"], i["quantity"], i["price"])
            for t in tenants for o in api.truth(t, "orders") for n, i in enumerate(o["items"])]
    assert sorted(lines) == sorted(want), "orders__items differ from the orders' items"
    return everything


# sessionvision: two projects
SV_KEYS = {"events": ("id",), "sessions": ("id",), "persons": ("id",),
           "event_definitions": ("name",), "property_definitions": ("key",),
           "action_definitions": ("id",)}
SV_JSON_COLUMNS = {"properties", "example_values", "steps"}
SV_PROMOTED = {"$current_url": "current_url", "$browser": "browser",
               "$device_type": "device_type", "$country": "country", "$referrer": "referrer"}


@pytest.fixture
def sessionvision(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[SessionVisionApi]:
    """Two projects, 10 days of visits with late events, served and configured to sync."""
    api = SessionVisionApi(parse_iso_ms(START), seed=3, visits_per_day=120, history_days=10,
                           late_share=0.08)
    with serve_sessionvision(api, monkeypatch, tmp_path):
        yield api


def serve_sessionvision(api: SessionVisionApi, monkeypatch: pytest.MonkeyPatch,
                        tmp_path: Path) -> ContextManager[SessionVisionApi]:
    """`api` served on 127.0.0.1, with sessionsync configured to sync both its projects."""
    return serving(api, monkeypatch, tmp_path, lambda url: {
        "SOURCES__SESSIONVISION__BASE_URL": url,
        "SOURCES__SESSIONVISION__API_TOKEN": DEMO_TOKEN,
        "SOURCES__SESSIONVISION__PROJECT_IDS": json.dumps(list(PROJECTS)),
        "SOURCES__SESSIONVISION__START_DATE": "2026-10-01",  # older than 7 days
    })


def sessionvision_rows(table: str,
                       destination: str = "duckdb") -> Dict[Tuple[str, ...], Dict[str, Any]]:
    """Rows of a table by (project_id, key...), asserting the keys are unique."""
    with connect(destination, resolve_location(destination, None)) as con:
        cur = con.execute(f"SELECT * FROM sessionvision.{table}")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    keyed = {(r["project_id"], *(str(r[k]) for k in SV_KEYS[table])): r for r in rows}
    assert len(keyed) == len(rows), f"duplicate rows in {table}"
    return keyed


def sessionvision_value(column: str, value: Any) -> Any:
    """A warehouse value in the API's shape (times as ISO with ms, JSON text parsed)."""
    if isinstance(value, datetime):
        return iso_ms(round(value.timestamp() * 1000))
    if column in SV_JSON_COLUMNS and isinstance(value, str):
        return json.loads(value)
    return value


def sessionvision_truth(api: SessionVisionApi, destination: str = "duckdb",
                        projects: Tuple[str, ...] = PROJECTS) -> Dict[str, Any]:
    """Every resource of `projects` (both, by default) equals the API's records, field for
    field, and no other project's rows are live in the warehouse."""
    everything = {}
    for table, key in SV_KEYS.items():
        rows = sessionvision_rows(table, destination)
        live = {k: r for k, r in rows.items() if r.get("deleted_at") is None}
        truth = {(p, *(str(rec[k]) for k in key)): rec for p in projects
                 for rec in api.truth(p, table)}
        assert truth, f"the sandbox has no {table}"
        missing, extra = truth.keys() - live.keys(), live.keys() - truth.keys()
        assert not missing, f"{len(missing)} {table} missing, e.g. {sorted(missing)[:2]}"
        assert not extra, f"{len(extra)} {table} live in the warehouse but not in the API"
        for k, record in truth.items():
            row = rows[k]
            if table == "events":
                for prop, column in SV_PROMOTED.items():
                    assert row[column] == record["properties"].get(prop), (k, column)
            for field, want in record.items():
                assert sessionvision_value(field, row[field]) == want, f"{table} {k}.{field}"
        everything[table] = rows
    return everything


# Tagbase: the verification log on disk, sessions and tags by id
@pytest.fixture
def tagbase(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TagbaseApi]:
    """A verification log of 4 days on disk and the API serving its sessions and tags."""
    api = TagbaseApi(parse_iso_ms(START), tmp_path / "log", seed=7, scans_per_day=250,
                     history_days=4, rotate_lines=300, duplicate_rate=0.03)
    with serving(api, monkeypatch, tmp_path, lambda url: {
        "SOURCES__TAGBASE__BASE_URL": url,
        "SOURCES__TAGBASE__API_KEY": TAGBASE_KEY,
        "SOURCES__TAGBASE__VERIFICATION_LOG_URL": str(api.log_dir),
    }):
        yield api


def tagbase_rows(table: str, destination: str = "duckdb") -> Dict[str, Dict[str, Any]]:
    """Rows of `tagbase.<table>` by id."""
    return table_rows(f"tagbase.{table}", destination)


def tagbase_time(value: Any) -> str:
    """A timestamp as the API writes it (microseconds, `Z`), from either side."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def tagbase_truth(api: TagbaseApi, destination: str = "duckdb") -> Dict[str, Any]:
    """Every verification once; every referenced session and tag current, or marked 404."""
    verifications = tagbase_rows("verifications", destination)
    assert len(api.verifications) > 100, "too little data to prove anything"
    assert verifications.keys() == api.verifications.keys()
    for vid, truth in api.verifications.items():
        row = verifications[vid]
        read = (row["status"], tagbase_time(row["inserted_at"]), row["session_id"], row["tag_id"])
        assert read == (truth["status"], truth["inserted_at"], truth["session"], truth["tag"]), vid

    visible = api.visible()
    sessions, tags = tagbase_rows("sessions", destination), tagbase_rows("tags", destination)
    assert sessions.keys() == {v["session"] for v in api.verifications.values()}
    assert tags.keys() == {v["tag"] for v in api.verifications.values()}
    # A final session and a configured tag are not read again (the contract says they need
    # not be), so one whose tag was deleted after it was read keeps its last reading.
    for sid, row in sessions.items():
        deleted_since = row["found"] and api.sessions[sid]["tag"] in api.deleted
        assert row["found"] == (sid in visible["sessions"]) or deleted_since, sid
        if row["found"]:
            truth = api.sessions[sid]
            assert (row["tag_id"], tagbase_time(row["inserted_at"])) == (truth["tag"],
                                                                 truth["inserted_at"])
    for tid, row in tags.items():
        deleted_since = row["found"] and row["status"] == "configured" and tid in api.deleted
        assert row["found"] == (tid in visible["tags"]) or deleted_since, tid
        if row["found"]:
            truth = api.tags[tid]
            got = {k: tagbase_time(row[k]) if row[k] is not None else None
                   for k in ("protocol", "url", "status", "configured_at", "inserted_at")}
            assert got == truth, tid
    return {"sessions": sessions, "tags": tags, "verifications": verifications}


# Each source's comparison of the warehouse with its sandbox's truth.
TRUTH: Dict[str, Callable[..., Dict[str, Any]]] = {
    "mobilenext": assert_equals_truth,
    "session_services": session_services_truth,
    "tagbase": tagbase_truth,
    "sessionvision": sessionvision_truth,
}


def pipeline_state(source: str = "mobilenext") -> Dict[str, Any]:
    """The sources' state in the local dlt pipeline of `source` (DuckDB warehouse)."""
    from pipelines.run import make_pipeline

    pipeline = make_pipeline(source, "duckdb", None)
    return dict(pipeline.state.get("sources", {}))


def runs(source: str = "mobilenext") -> List[dict]:
    """The run log's rows of `source`, oldest first."""
    import duckdb

    with duckdb.connect(str(resolve_location("duckdb", None)), read_only=True) as con:
        cur = con.execute("SELECT * FROM sessionsync_ops.sessionsync_runs WHERE source = ? "
                          "ORDER BY finished_at, resource", [source])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


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


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    """The four small BI sandboxes (tests/bi.py) served, and the CLI pointed at them."""
    from sandbox.serve import demo_env
    from tests.bi import World  # tests.bi imports this module

    w = World(tmp_path)
    servers = {name: Served(api).start() for name, api in w.apis().items()}
    try:
        env = demo_env({name: s.url for name, s in servers.items()})
        env["SOURCES__TAGBASE__VERIFICATION_LOG_URL"] = str(w.tagbase.log_dir)
        isolate(monkeypatch, tmp_path, env)
        yield w
    finally:
        for server in servers.values():
            server.stop()

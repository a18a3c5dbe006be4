"""BI marts end to end: four sandboxes synced, `sessionsync transform` (dbt) over both
warehouses, marts compared with the same metrics computed from the sandboxes' own records."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import duckdb
import pytest

from pipelines.run import sync
from pipelines.transform import bi_database, transform
from pipelines.warehouse import connect, is_remote, resolve_location
from sandbox.core import Served, parse_iso_ms
from sandbox.mobilenext import MobileNextApi
from sandbox.serve import START, demo_env
from sandbox.session_services import SessionServicesApi
from sandbox.sessionvision import PROJECTS, SessionVisionApi
from sandbox.tagbase import TagbaseApi
from tests.conftest import MEMBER_ORGS, Receiver, isolate
from tests.test_mobilenext_failures import run_cli

DAY_S = 86_400
SOURCES = ("mobilenext", "session_services", "tagbase", "sessionvision")
INCREMENTAL = ("event_sales_daily", "active_user_days", "active_users_daily")


class World:
    """The four sandbox APIs, small and seeded, served on 127.0.0.1."""

    def __init__(self, tmp_path: Path) -> None:
        start = parse_iso_ms(START)
        self.mobilenext = MobileNextApi(start, seed=11, sessions_per_day=60, history_days=8)
        self.session_services = SessionServicesApi(start, seed=5, orders_per_day=30,
                                                   history_days=20)
        self.tagbase = TagbaseApi(start, tmp_path / "taglog", seed=7, scans_per_day=80,
                                  history_days=4)
        self.sessionvision = SessionVisionApi(start, seed=3, visits_per_day=40, history_days=8,
                                              late_share=0.15)

    def apis(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in SOURCES}

    def advance(self, seconds: float) -> None:
        for api in self.apis().values():
            api.advance(seconds)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
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


# -- the same metrics, from the sandboxes' own records ------------------------------------------

def _day(iso: str) -> str:
    return iso[:10]  # every API writes UTC times, `YYYY-MM-DDT...Z`


def truth_dau(api: SessionVisionApi) -> Dict[Tuple[str, str], int]:
    users: Dict[Tuple[str, str], set] = defaultdict(set)
    for project in PROJECTS:
        for event in api.truth(project, "events"):
            users[(project, _day(event["timestamp"]))].add(event["distinct_id"])
    return {k: len(v) for k, v in users.items()}


def truth_net_per_event(api: SessionServicesApi) -> Dict[str, int]:
    net: Dict[str, int] = Counter()
    for tenant in api.tenants:
        for order in api.truth(tenant, "orders"):
            if order["status"] in ("SUCCESSFUL", "DISPUTED"):
                net[order["eventId"]] += order["net"]
    return dict(net)


def truth_admitted_per_event(api: SessionServicesApi) -> Dict[str, int]:
    admitted: Dict[str, int] = {e["id"]: 0 for t in api.tenants for e in api.truth(t, "events")}
    for tenant in api.tenants:
        for ticket in api.truth(tenant, "tickets"):
            if ticket["scannedAt"] is not None and ticket["status"] != "CANCELLED":
                admitted[ticket["eventId"]] += 1
    return admitted


def truth_device_minutes(api: MobileNextApi) -> Dict[Tuple[str, str], float]:
    """Minutes of released live sessions per organization and UTC day, split at midnight."""
    minutes: Dict[Tuple[str, str], float] = defaultdict(float)
    for org in MEMBER_ORGS:
        for s in api.truth(org):
            if s["releasedAt"] is None:
                continue
            start = datetime.fromtimestamp(parse_iso_ms(s["createdAt"]) / 1000, UTC)
            end = datetime.fromtimestamp(parse_iso_ms(s["releasedAt"]) / 1000, UTC)
            while start < end:
                midnight = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(1)
                piece_end = min(end, midnight)
                minutes[(org, start.date().isoformat())] += (piece_end - start).total_seconds() / 60
                start = piece_end
    return dict(minutes)


def truth_verdicts(api: TagbaseApi) -> Dict[Tuple[str, str], Dict[str, int]]:
    counts: Dict[Tuple[str, str], Dict[str, int]] = defaultdict(
        lambda: {"valid": 0, "invalid": 0, "pending": 0})
    for v in api.verifications.values():
        counts[(v["tag"], _day(v["inserted_at"]))][v["status"]] += 1
    return dict(counts)


# -- the marts --------------------------------------------------------------------------------

def query(destination: str, sql: str) -> list:
    """Rows of `sql` over the marts where BI tools read them: the DuckDB file, or a shared
    warehouse itself (Postgres, the Delta tables published to the bucket)."""
    location = resolve_location(destination, None)
    database = bi_database(destination, location)
    with (connect(destination, location) if is_remote(location)
          else duckdb.connect(str(database), read_only=True)) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql).fetchall()


def assert_marts_equal_truth(world: World, destination: str) -> None:
    """DAU, net revenue, admissions, device minutes and verdicts equal the APIs' records."""
    dau = {(p, str(d)): n for p, d, n in query(
        destination, "SELECT project_id, day, dau FROM bi.active_users_daily")}
    assert dau == truth_dau(world.sessionvision)
    assert len(dau) >= 10, "too little data to prove anything"

    net = dict(query(destination, "SELECT event_id, sum(net) FROM bi.event_sales_daily GROUP BY 1"))
    truth_net = truth_net_per_event(world.session_services)
    assert net == truth_net
    assert len(net) >= 5, "too little data to prove anything"

    admitted = dict(query(destination,
                          "SELECT event_id, tickets_admitted FROM bi.event_admissions"))
    assert admitted == truth_admitted_per_event(world.session_services)
    assert sum(admitted.values()) > 20, "no admitted tickets: this would prove nothing"

    minutes = {(o, str(d)): m for o, d, m in query(
        destination, "SELECT organization_id, day, sum(device_minutes) "
                     "FROM bi.device_minutes_daily GROUP BY ALL")}
    truth_minutes = truth_device_minutes(world.mobilenext)
    assert minutes.keys() == truth_minutes.keys()
    off = {k: (minutes[k], v) for k, v in truth_minutes.items() if abs(minutes[k] - v) > 0.01}
    assert not off, f"device minutes differ: {list(off.items())[:3]}"

    verdicts = {(t, str(d)): {"valid": v, "invalid": i, "pending": p} for t, d, v, i, p in query(
        destination, "SELECT tag_id, day, valid, invalid, pending FROM bi.tag_verdicts_daily")}
    assert verdicts == truth_verdicts(world.tagbase)
    assert sum(v["invalid"] for v in verdicts.values()) > 0


def refund_old_orders(api: SessionServicesApi, before: Any, n: int = 3) -> None:
    """Refund `n` successful orders placed before the day `before`, as a customer would."""
    tenant = next(iter(api.tenants))
    old = [o for o in api.truth(tenant, "orders") if o["status"] == "SUCCESSFUL"
           and o["refunded"] == 0 and o["createdAt"][:10] < before.isoformat()]
    assert len(old) >= n, "too few orders to refund"
    with api.lock:
        for order in old[:n]:
            api._on_order_refund(tenant, order["id"])


def snapshot(destination: str, tables: Tuple[str, ...]) -> Dict[str, list]:
    return {t: sorted(query(destination, f"SELECT * FROM bi.{t}"), key=repr) for t in tables}


def all_marts(destination: str) -> Tuple[str, ...]:
    names = query(destination, "SELECT table_name FROM information_schema.tables "
                               "WHERE table_schema = 'bi' AND table_name <> 'resource_freshness'")
    return tuple(sorted(n for (n,) in names))


def assert_report_has_every_chart(page: Path) -> None:
    """Every chart of the report drew from its mart (none says "no data yet")."""
    from pipelines.report import CHARTS

    markup = page.read_text()
    assert "no data yet" not in markup
    for key, _, _ in CHARTS:
        assert f'id="plot-{key}"' in markup, f"chart {key} has no plot"


def late_data_then_incremental_equals_rebuild(world: World, destination: str) -> None:
    """After the first transform: late events and refunds of old orders land, a sync and an
    incremental transform follow; the marts equal the truth, the late data changed days
    already built, and a full rebuild gives the same marts."""
    before = snapshot(destination, INCREMENTAL)
    newest_day = max(d for _, d, *_ in before["active_users_daily"])
    newest_sale = max(d for _, _, d, *_ in before["event_sales_daily"])

    # A day and a half later: late sessionvision events land in days already built, and
    # refunds (as the sandbox makes them) land on orders placed days ago.
    world.advance(1.5 * DAY_S)
    refund_old_orders(world.session_services, before=newest_sale - timedelta(days=3))
    assert all(r.ok for r in sync(SOURCES, destination)), "second sync failed"
    result = transform(destination)
    assert result.ok, result.error
    assert_marts_equal_truth(world, destination)
    incremental = snapshot(destination, all_marts(destination))
    changed_days = {r[1] for r in set(incremental["active_users_daily"])
                    - set(before["active_users_daily"]) if r[1] <= newest_day}
    assert changed_days, "no late event changed a day already built: the test proves nothing"
    refunded_days = {r[2] for r in set(incremental["event_sales_daily"])
                     - set(before["event_sales_daily"]) if r[2] < newest_sale}
    assert refunded_days, "no refund changed an older day: the test proves nothing"

    full = transform(destination, full_refresh=True)
    assert full.ok, full.error
    assert snapshot(destination, all_marts(destination)) == incremental


# -- tests ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_marts_equal_sandbox_metrics_and_incremental_equals_full_rebuild(world: World) -> None:
    done = run_cli("sync", "--transform")
    assert done.returncode == 0, done.stderr
    assert "transform: ok" in done.stdout, done.stdout
    assert_marts_equal_truth(world, "duckdb")
    late_data_then_incremental_equals_rebuild(world, "duckdb")


@pytest.mark.slow
def test_delta_warehouse_marts_and_report_in_chromium(world: World, tmp_path: Path) -> None:
    from tests.bi_browser import assert_report_renders_offline

    assert all(r.ok for r in sync(SOURCES, "parquet"))
    done = run_cli("transform", "--destination", "parquet")
    assert done.returncode == 0, done.stderr
    assert_marts_equal_truth(world, "parquet")

    done = run_cli("report", "--destination", "parquet", "--output", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {tmp_path / 'r.html'}"
    assert_report_renders_offline(tmp_path / "r.html", tmp_path)


def test_failed_transform_is_reported_and_leaves_loaded_data(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from schedules.scheduler import run_scheduled

    warehouse = resolve_location("duckdb", None)
    monkeypatch.setenv("SCHEDULES__TRANSFORM", "false")  # as env vars spell it
    run_scheduled("mobilenext", "duckdb", None)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM information_schema.schemata "
                           "WHERE schema_name = 'bi'").fetchone() == (0,)

    # A scheduled run with `[schedules] transform = true` builds the marts of what is loaded
    # (only mobilenext: the other sources' models are left out, not failed).
    monkeypatch.setenv("SCHEDULES__TRANSFORM", "true")
    run_scheduled("mobilenext", "duckdb", None)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        runs = con.execute("SELECT mode, status, count(*) FROM sessionsync_ops.sessionsync_runs "
                           "WHERE source = 'dbt' GROUP BY ALL").fetchall()
        built = con.execute("SELECT count(*) FROM bi.device_minutes_daily").fetchone()
    assert runs == [("scheduled", "ok", 5)], runs  # 3 staging models, 2 marts
    assert built and built[0] > 0

    # A row the models refuse (a platform the contract does not have) fails a dbt test.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("INSERT INTO mobilenext.sessions (id, organization, device__platform, "
                    "created_at, released_at) SELECT 'ses_x', 'org_acme', 'windows', now(), "
                    "now()")
        loaded = con.execute("SELECT * FROM mobilenext.sessions ORDER BY id").fetchall()
        marts = con.execute("SELECT * FROM bi.device_minutes_daily ORDER BY ALL").fetchall()

    hook = Receiver()
    try:
        done = run_cli("transform", ALERTS__WEBHOOK_URL=hook.url)
    finally:
        hook.close()
    assert done.returncode == 1
    # alerted like a failed sync (the command waits for its alerts before it exits)
    assert [(b["source"], b["resource"], b["status"]) for b in hook.bodies] == [
        ("dbt", "transform", "failed")]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("error: transform: test accepted_values_stg_mobilenext__"
                                "sessions_platform"), errors
    assert "model device_minutes_daily skipped" in errors[0]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT * FROM mobilenext.sessions ORDER BY id").fetchall() == loaded
        assert con.execute("SELECT * FROM bi.device_minutes_daily ORDER BY ALL").fetchall() == marts
        failed = con.execute("SELECT resource, error FROM sessionsync_ops.sessionsync_runs "
                             "WHERE source = 'dbt' AND status = 'failed' AND mode = 'manual'"
                             ).fetchall()
    assert ("device_minutes_daily", errors[0][len("error: transform: "):]) in failed


def test_transform_without_synced_tables_says_so(tmp_path: Path) -> None:
    env = {"SESSIONSYNC__WAREHOUSE": "/nonexistent/w.duckdb",
           "SESSIONSYNC__FILE_WAREHOUSE": str(tmp_path / "files"),
           "SESSIONSYNC__PIPELINES_DIR": str(tmp_path / "pipelines")}
    done = run_cli("transform", **env)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: transform: no warehouse at /nonexistent/w.duckdb; "
                                   "run `sessionsync sync` first")
    assert done.stdout == ""

    done = run_cli("transform", "--destination", "parquet", **env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: transform: no synced tables in {tmp_path / 'files'}; run `sessionsync sync` "
        "first")

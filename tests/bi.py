"""The BI checks shared by the DuckDB, Delta, Postgres and S3 tests: four small sandboxes, the
marts' metrics computed from their own records, and the comparisons."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Dict, Tuple

import duckdb

from pipelines.run import sync
from pipelines.transform import bi_database, transform
from pipelines.warehouse import connect, is_remote, resolve_location
from sandbox.core import parse_iso_ms
from sandbox.mobilenext import MobileNextApi
from sandbox.serve import START
from sandbox.session_services import SessionServicesApi
from sandbox.sessionvision import PROJECTS, SessionVisionApi
from sandbox.tagbase import TagbaseApi
from tests.conftest import MEMBER_ORGS

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

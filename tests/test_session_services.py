"""Session Services end to end: two tenants, lifecycles on the clock, tenant isolation."""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from pipelines.run import make_pipeline, sync_source
from pipelines.warehouse import connect, resolve_location
from sandbox.core import Request, parse_iso_ms
from sandbox.serve import START
from sandbox.session_services import (
    DAY,
    TENANTS,
    UNISSUED_TENANT,
    SessionServicesApi,
    token_for,
)
from sources.errors import ApiError
from sources.http import ApiClient, BearerAuth, HttpConfig
from tests.conftest import SS_TABLES as TABLES
from tests.conftest import assert_quiet_run, load_count, run_cli
from tests.conftest import serve_session_services as _served
from tests.conftest import session_services_rows as loaded
from tests.conftest import session_services_truth as assert_equals_truth

A, B = list(TENANTS)
DAY_S = DAY // 1000  # the clock advances in seconds


@pytest.fixture
def session_services_90(monkeypatch: pytest.MonkeyPatch,
                        tmp_path: Path) -> Iterator[SessionServicesApi]:
    """90 days of orders: more than the 60-day refund window, so a run resumes at a stored
    orders cursor and older orders exist (for disputes the window no longer reads)."""
    api = SessionServicesApi(parse_iso_ms(START), seed=7, orders_per_day=20, history_days=90)
    yield from _served(api, monkeypatch, tmp_path, start_date="2026-06-01")


def test_initial_sync_of_two_tenants_equals_truth(session_services: SessionServicesApi) -> None:
    result = sync_source("session_services")
    assert result.ok, result.error
    data = assert_equals_truth(session_services)
    assert {r["tenant_id"] for r in data["orders"].values()} == {A, B}
    items = connect("duckdb", resolve_location("duckdb", None)).execute(
        "SELECT count(*) FROM session_services.orders__items").fetchall()[0][0]
    truth = [o for t in TENANTS for o in session_services.truth(t, "orders")]
    assert items == sum(len(o["items"]) for o in truth)


def test_parquet_warehouse_equals_truth(session_services: SessionServicesApi) -> None:
    assert sync_source("session_services", "parquet").ok
    session_services.advance(3 * DAY_S)
    assert sync_source("session_services", "parquet").ok
    assert_equals_truth(session_services, "parquet")


TS = "TIMESTAMP WITH TIME ZONE"
# The columns and types of the tables built as Arrow: the ones dlt gave them when it normalized
# dicts, less dlt's `_dlt_id` / `_dlt_load_id`; `orders__items` is keyed by order id and line
# (it was dlt's child table, joined by `_dlt_parent_id`; see the source README).
COLUMNS = {
    "orders": {
        "id": "VARCHAR", "tenant_id": "VARCHAR", "event_id": "VARCHAR", "status": "VARCHAR",
        "currency": "VARCHAR", **{money: "BIGINT" for money in (
            "total", "gross", "base", "booking", "shipping", "discount", "refunded", "gateway",
            "net")},
        "customer__id": "VARCHAR", "customer__name": "VARCHAR", "customer__email": "VARCHAR",
        "created_at": TS, "updated_at": TS},
    "orders__items": {
        "order_id": "VARCHAR", "line": "BIGINT", "tenant_id": "VARCHAR",
        "admission_id": "VARCHAR", "section_id": "VARCHAR", "quantity": "BIGINT",
        "price": "BIGINT"},
    "tickets": {
        "id": "VARCHAR", "tenant_id": "VARCHAR", "order_id": "VARCHAR", "event_id": "VARCHAR",
        "admission_id": "VARCHAR", "section_id": "VARCHAR", "status": "VARCHAR",
        "attendee__name": "VARCHAR", "attendee__email": "VARCHAR", "scanned_at": TS,
        "created_at": TS, "updated_at": TS},
}


def test_orders_items_and_tickets_have_the_documented_columns_and_types(
        session_services: SessionServicesApi) -> None:
    assert sync_source("session_services").ok
    con = connect("duckdb", resolve_location("duckdb", None))
    for table, want in COLUMNS.items():
        got = dict(con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'session_services' AND table_name = ?", [table]).fetchall())
        assert got == want, table
    keys = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
        "'session_services' AND is_nullable = 'NO' ORDER BY 1, 2").fetchall()
    assert {k for k in keys if k[0] in COLUMNS} == {
        ("orders", "id"), ("orders__items", "line"), ("orders__items", "order_id"),
        ("tickets", "id")}


def _loaded_items(destination: str) -> Dict[tuple, tuple]:
    """`orders__items` by (order id, line); a line loaded twice fails."""
    found: Dict[tuple, tuple] = {}
    with connect(destination, resolve_location(destination, None)) as con:
        rows = con.execute("SELECT order_id, line, tenant_id, admission_id, section_id, "
                           "quantity, price FROM session_services.orders__items").fetchall()
    for order_id, line, *rest in rows:
        assert (order_id, line) not in found, f"{order_id} line {line} loaded twice"
        found[(order_id, line)] = tuple(rest)
    return found


def _true_items(api: SessionServicesApi) -> Dict[tuple, tuple]:
    return {(o["id"], n): (t, i["admissionId"], i["sectionId"], i["quantity"], i["price"])
            for t in TENANTS for o in api.truth(t, "orders") for n, i in enumerate(o["items"])}


@pytest.mark.parametrize("destination", ["duckdb", "parquet", "postgres"])
def test_order_whose_items_change_ends_with_exactly_its_new_lines(
        session_services: SessionServicesApi, destination: str,
        request: pytest.FixtureRequest) -> None:
    if destination == "postgres":
        request.getfixturevalue("postgres")
    assert sync_source("session_services", destination).ok
    assert _loaded_items(destination) == _true_items(session_services)
    orders = session_services.truth(A, "orders")
    two = [o for o in orders if len(o["items"]) >= 2]
    one = [o for o in orders if len(o["items"]) == 1]
    assert len(two) >= 2 and one, "the sandbox has no orders to edit"
    shrunk, edited, grown = two[0], two[1], one[0]
    session_services.edit_items(A, edited["id"], [
        dict(i, quantity=i["quantity"] + 1, price=i["price"] + 100) for i in edited["items"]])
    session_services.edit_items(A, grown["id"], grown["items"] + [
        dict(grown["items"][0], sectionId="sec_balcony", quantity=3)])
    if destination != "parquet":  # Delta upserts lines by key: see the source README
        session_services.edit_items(A, shrunk["id"], shrunk["items"][-1:])
    session_services.advance(60)

    result = sync_source("session_services", destination)
    assert result.ok, result.error
    assert result.rows["orders"] >= 2
    loaded = _loaded_items(destination)
    want = _true_items(session_services)
    for order in (shrunk, edited, grown):
        assert ({k: v for k, v in loaded.items() if k[0] == order["id"]}
                == {k: v for k, v in want.items() if k[0] == order["id"]}), order["id"]
    assert loaded == want


def test_incremental_sync_keeps_every_lifecycle_current(
        session_services: SessionServicesApi) -> None:
    assert sync_source("session_services").ok
    before = {t: loaded(t) for t in TABLES}
    session_services.advance(4 * DAY_S)

    result = sync_source("session_services")
    assert result.ok, result.error
    after = assert_equals_truth(session_services)

    def changed(table: str, field: str) -> List[str]:
        return [i for i, r in before[table].items() if r[field] != after[table][i][field]]

    # the clock really changed old records, and the sync carried each change
    assert changed("orders", "refunded"), "no refund on an already-loaded order"
    assert changed("orders", "status"), "no status change on an already-loaded order"
    assert changed("tickets", "status"), "no ticket scanned or cancelled"
    assert changed("events", "updated_at"), "no event edited"
    was_live = {i for i, r in before["events"].items() if r["deleted_at"] is None}
    new_deleted = [i for i, r in after["events"].items()
                   if r["deleted_at"] is not None and i in was_live]
    assert new_deleted, "no event soft-deleted"
    assert result.rows["orders"] < len(after["orders"]) / 2, "incremental must not reload history"


def test_noop_sync_stays_within_the_documented_request_bound(
        session_services: SessionServicesApi) -> None:
    assert sync_source("session_services").ok
    assert_quiet_run(session_services, "session_services")
    now = session_services.now_ms

    def scanning(event: Dict[str, Any]) -> bool:  # entry window open, or closed < 12 h ago
        return (parse_iso_ms(event["entryStartsAt"]) <= now
                and parse_iso_ms(event["entryEndsAt"]) >= now - 12 * 3_600_000)

    bound = 0
    for t in TENANTS:
        tenant = session_services.tenants[t]
        window = [o for o in tenant.orders.by_id.values()
                  if parse_iso_ms(o["createdAt"]) >= now - 61 * DAY]
        events = list(tenant.events.by_id.values())
        live = [e for e in events if "deletedAt" not in e]
        on_sale = [e for e in live if e["status"] in ("UPCOMING", "ACTIVE")]
        bound += (1  # the server's clock, read before anything else
                  + math.ceil(len(window) / 100) + 1  # orders window (+1 page: ladder granularity)
                  + math.ceil(len(live) / 100) + 1  # events, live and soft-deleted lists
                  + math.ceil(len(tenant.venues.ids) / 100)
                  + len(on_sale)  # admissions of events on sale
                  + sum(math.ceil(len(tenant.tickets_of_event[e["id"]]) / 100) or 1
                        for e in events if scanning(e)))  # tickets being scanned
    assert 0 < len(session_services.requests) <= bound
    assert session_services.count("/tickets") == 0 or any(
        scanning(e) for t in TENANTS for e in session_services.truth(t, "events"))


def test_token_of_another_tenant_fails_that_tenant_only(session_services: SessionServicesApi,
                                                        tmp_path: Path) -> None:
    tokens = {A: token_for(A), B: token_for(A)}
    proc = run_cli("sync", "session_services",
                   SOURCES__SESSION_SERVICES__TENANT_TOKENS=json.dumps(tokens))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and B in lines[0] and "403" in lines[0], proc.stderr
    assert token_for(A) not in proc.stdout + proc.stderr
    orders = loaded("orders")
    assert {r["tenant_id"] for r in orders.values()} == {A}
    assert orders.keys() == {o["id"] for o in session_services.truth(A, "orders")}
    # B's state was not touched: a later run with the right token loads all of B
    result = sync_source("session_services")
    assert result.ok, result.error
    assert_equals_truth(session_services)


def test_unknown_tenant_is_named(session_services: SessionServicesApi,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = {A: token_for(A), UNISSUED_TENANT: token_for(A)}
    monkeypatch.setenv("SOURCES__SESSION_SERVICES__TENANT_TOKENS", json.dumps(tokens))
    result = sync_source("session_services")
    assert not result.ok
    assert UNISSUED_TENANT in (result.error or "") and "Tenant not found" in (result.error or "")
    assert {r["tenant_id"] for r in loaded("orders").values()} == {A}


def test_tenants_are_read_at_once(session_services: SessionServicesApi) -> None:
    """The sandbox holds tenant A's first orders page and its first tickets page until tenant
    B asks for the same list (at most 10 s): read one tenant after another, B never asks
    while A waits."""
    firsts: Dict[str, Dict[str, threading.Event]] = {
        path: {t: threading.Event() for t in TENANTS} for path in ("/orders", "/tickets")}
    overlapped: Dict[str, bool] = {}

    def hold_a_until_b(request: Request) -> None:
        events = firsts.get(request.path)
        if events is None or request.arg("after") is not None:
            return
        tenant = request.headers.get("x-tenant-id", "")
        if tenant in events and not events[tenant].is_set():
            events[tenant].set()
            if tenant == A:
                overlapped[request.path] = events[B].wait(10)

    session_services.before_request = hold_a_until_b
    result = sync_source("session_services")
    assert result.ok, result.error
    assert overlapped == {"/orders": True, "/tickets": True}
    assert_equals_truth(session_services)


def test_a_tenant_refused_mid_scan_fails_alone_while_the_other_loads(
        session_services: SessionServicesApi) -> None:
    """B's token is revoked after B's second orders page, while A is paged at the same time:
    one line names B, A loads whole, B's state stays, and with the token back all of B
    loads."""
    pages: List[str] = []

    def revoke_b(request: Request) -> None:
        if request.path == "/orders" and request.headers.get("x-tenant-id") == B:
            pages.append(request.path)
            if len(pages) == 3:
                session_services.revoked.add(token_for(B))

    session_services.before_request = revoke_b
    result = sync_source("session_services")
    assert not result.ok
    error = result.error or ""
    assert len(error.splitlines()) == 1 and B in error and "401" in error, error
    assert A not in error
    orders = loaded("orders")
    assert {o["id"] for o in orders.values() if o["tenant_id"] == A} == {
        o["id"] for o in session_services.truth(A, "orders")}
    assert {t["tenant_id"] for t in loaded("tickets").values()} == {A}
    resources = make_pipeline("session_services", "duckdb", None).state["sources"][
        "session_services"]["resources"]
    assert resources["orders"]["tenants"][A]["watermark"]
    assert not any(r.get("tenants", {}).get(B) for r in resources.values())  # B's never moved

    session_services.before_request = None
    session_services.revoked.clear()
    result = sync_source("session_services")
    assert result.ok, result.error
    assert_equals_truth(session_services)


def _copies(destination: str) -> Dict[str, tuple]:
    """Rows and distinct keys of each table in the warehouse."""
    keys = {t: "id" for t in TABLES}
    keys["orders__items"] = "order_id, line"
    with connect(destination, resolve_location(destination, None)) as con:
        return {t: con.execute(f"SELECT count(*), count(DISTINCT ({k})) "
                               f"FROM session_services.{t}").fetchall()[0]
                for t, k in keys.items()}


@pytest.mark.parametrize("destination", ["duckdb", "parquet"])
def test_a_first_sync_appends_each_row_once_and_later_syncs_merge(
        session_services: SessionServicesApi, destination: str) -> None:
    """Nothing of the source in the warehouse: the first sync appends (one row per id: the
    load is de-duplicated); the next one merges into what it loaded."""
    assert sync_source("session_services", destination).ok
    schema = make_pipeline("session_services", destination, None).default_schema
    assert {t: schema.get_table(t)["write_disposition"] for t in (*TABLES, "orders__items")
            } == {t: "append" for t in (*TABLES, "orders__items")}
    assert all(rows == ids for rows, ids in _copies(destination).values())
    assert_equals_truth(session_services, destination)

    session_services.advance(3 * DAY_S)  # orders change, refunds, scans: merged now
    assert sync_source("session_services", destination).ok
    schema = make_pipeline("session_services", destination, None).default_schema
    assert schema.get_table("orders")["write_disposition"] == "merge"
    assert all(rows == ids for rows, ids in _copies(destination).values())
    assert_equals_truth(session_services, destination)


def test_a_first_sync_whose_load_failed_is_read_again_not_finished(
        session_services: SessionServicesApi, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The first sync's load fails (DuckDB out of memory) after its rows were read: the next
    run drops that package (its appends, run again, could double rows) and reads the API
    again, loading every row once."""
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG",
                       '{"memory_limit": "1MB"}')
    result = sync_source("session_services")
    assert not result.ok and "memory_limit" in (result.error or "")
    assert make_pipeline("session_services", "duckdb", None).has_pending_data
    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG")
    session_services.reset_stats()
    with caplog.at_level(logging.WARNING, logger="sessionsync"):
        assert sync_source("session_services").ok
    assert "a first sync whose load did not finish is read again" in caplog.text
    assert "finishing the load" not in caplog.text
    assert session_services.count("/orders") > 0, "the API was read again"
    assert load_count("session_services") == 1
    assert all(rows == ids for rows, ids in _copies("duckdb").values())
    assert_equals_truth(session_services)


def test_retries_under_429_and_5xx(session_services: SessionServicesApi) -> None:
    session_services.faults.update(rate_429=0.15, rate_5xx=0.1, rate_malformed=0.03, retry_after=0)
    result = sync_source("session_services")
    assert result.ok, result.error
    assert session_services.injected.get("429", 0) > 0
    assert_equals_truth(session_services)


def test_invalid_stored_cursor_fails_clearly_and_keeps_state(
        session_services: SessionServicesApi, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sync_source("session_services").ok
    session_services.advance(61 * DAY_S)
    assert sync_source("session_services").ok  # stores page cursors past the first page
    pipeline = make_pipeline("session_services", "duckdb", None)
    state = json.dumps(pipeline.state["sources"], sort_keys=True)
    session_services.advance(DAY_S)  # the next window starts at one of those cursors
    # the server rotates its cursor key: every stored cursor is now invalid
    monkeypatch.setattr("sandbox.session_services._CURSOR_SECRET", b"rotated")
    result = sync_source("session_services")
    assert not result.ok
    assert "HTTP 400" in (result.error or "") and "Invalid cursor" in (result.error or "")
    pipeline = make_pipeline("session_services", "duckdb", None)
    assert json.dumps(pipeline.state["sources"], sort_keys=True) == state


def test_limit_validation_is_a_clear_error(session_services: SessionServicesApi) -> None:
    http = HttpConfig(connect_timeout=2, read_timeout=2, max_retries=2, backoff_base=0.01,
                      backoff_max=0.01, max_pages=10)
    with ApiClient("session_services", session_services.url,  # type: ignore[attr-defined]
                   BearerAuth(token_for(A)), http, headers={"x-tenant-id": A},
                   error_message=lambda b: f"{b['message']} {b['issues']}") as client:
        with pytest.raises(ApiError) as err:
            client.get_json("/orders", params={"limit": 101})
    assert err.value.status == 422 and "limit" in str(err.value)
    assert len(session_services.requests) == 1, "a 422 must not be retried"


# -- issue 13: an API that does what the contract allows -------------------------------------

def test_order_refunded_during_its_own_scan_is_refunded_after_the_next_sync(
        session_services: SessionServicesApi) -> None:
    api = session_services
    assert sync_source("session_services").ok
    api.advance(DAY_S)
    # the clock moves with every request, and each later orders page comes after a refund
    # of an order an earlier page of the same scan returned
    api.faults.update(tick_seconds=20)
    api.served_change_rate = 1.0
    assert sync_source("session_services").ok
    refunded = list(api.served_changes)
    assert refunded, "no order was refunded during the scan: the test would prove nothing"
    api.faults.update(tick_seconds=0)
    api.served_change_rate = 0.0
    api.advance(60)

    assert sync_source("session_services").ok
    orders, tickets = loaded("orders"), loaded("tickets")
    for tenant, oid in refunded:
        truth = api.tenants[tenant].orders.by_id[oid]
        assert orders[oid]["refunded"] == truth["refunded"] < 0, f"order {oid} not refunded"
        for tkt in api.tenants[tenant].tickets_of_order[oid]:
            assert tickets[tkt]["status"] == "CANCELLED", f"ticket {tkt} of {oid} not cancelled"
    assert_equals_truth(api)


def test_event_deleted_between_the_two_lists_is_one_row_marked_deleted(
        session_services: SessionServicesApi) -> None:
    api = session_services
    assert sync_source("session_services", "parquet").ok
    api.advance(DAY_S)
    state = make_pipeline("session_services", "parquet", None).state["sources"][
        "session_services"]["resources"]["events"]["tenants"]
    api.delete_between_lists = 1.0
    result = sync_source("session_services", "parquet")
    assert result.ok, result.error
    assert api.deleted_between, "no event deleted between the lists: the test proves nothing"
    changed = [e for t in TENANTS for e in api.truth(t, "events")
               if e["updatedAt"] >= state[t]["watermark"]]
    assert result.rows["events"] == len(changed), "an event was emitted twice"
    events = loaded("events", "parquet")  # asserts one row per id
    for _, eid in api.deleted_between:
        assert events[eid]["deleted_at"] is not None, f"event {eid} looks live"
    api.delete_between_lists = 0.0
    assert_equals_truth(api, "parquet")


def test_stale_page_at_the_stored_orders_cursor_loses_nothing(
        session_services_90: SessionServicesApi) -> None:
    api = session_services_90
    assert sync_source("session_services").ok
    api.advance(DAY_S)  # new orders after the end of the first scan
    repeated: List[str] = []

    def stale_at_stored_cursor(request: Any) -> None:
        """The run's first request for a next orders page (the stored cursor the run resumes
        at) is answered with the previous `/orders` answer: the last page of the previous
        run, `after: null` (a cache, a repeated response)."""
        first = (request.path == "/orders" and request.arg("after") is not None
                 and not repeated)
        api.faults.update(rate_repeat=1.0 if first else 0.0)
        if first:
            repeated.append(request.arg("after"))

    api.before_request = stale_at_stored_cursor
    try:
        result = sync_source("session_services")
    finally:
        api.before_request = None
        api.faults.update(rate_repeat=0.0)
    assert result.ok, result.error
    assert repeated and api.injected.get("repeat") == 1, "the run did not resume at a cursor"
    assert_equals_truth(api)


def test_changes_no_event_signals_reach_the_warehouse_within_the_recheck_bound(
        session_services_90: SessionServicesApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """Check-out scans after the entry window, disputes after the 60-day window: within
    2 x recheck_hours every one of them is in the warehouse."""
    api = session_services_90
    monkeypatch.setenv("SOURCES__SESSION_SERVICES__RECHECK_HOURS", "12")
    assert sync_source("session_services").ok
    api.unsignalled_per_day = 40
    for _ in range(4):  # a day of changes, synced every 6 hours
        api.advance(6 * 3600)
        assert sync_source("session_services").ok
    api.unsignalled_per_day = 0
    kinds = {kind for _, kind, _ in api.unsignalled}
    assert kinds == {"scan", "dispute"}, f"the sandbox made only {kinds}: the test proves little"
    for _ in range(5):  # 2 x recheck_hours and one more run
        api.advance(6 * 3600)
        assert sync_source("session_services").ok
    assert_equals_truth(api)


def test_full_recheck_that_finds_nothing_writes_nothing(
        session_services_90: SessionServicesApi, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sync_source("session_services").ok
    loads = load_count("session_services")
    session_services_90.reset_stats()
    monkeypatch.setenv("SOURCES__SESSION_SERVICES__RECHECK_HOURS", "0")  # re-read everything
    result = sync_source("session_services")
    assert result.ok and result.rows == {}, result.rows
    assert load_count("session_services") == loads
    api = session_services_90
    pages = sum(math.ceil(len(api.tenants[t].orders.ids) / 100) for t in TENANTS)
    events = sum(len(api.tenants[t].events.ids) for t in TENANTS)
    assert api.count("/orders") >= pages, "not every orders page was read again"
    assert api.count("/tickets") >= events, "not every event's tickets were read again"


def test_negative_recheck_hours_is_named(session_services: SessionServicesApi,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__SESSION_SERVICES__RECHECK_HOURS", "-1")
    result = sync_source("session_services")
    assert not result.ok and "recheck_hours" in (result.error or "")
    assert len((result.error or "").splitlines()) == 1
    assert not session_services.requests, "nothing is read with a bad setting"


def test_one_request_at_a_time_loads_the_same_as_the_default_concurrency(
        session_services: SessionServicesApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__SESSION_SERVICES__CONCURRENCY", "1")
    result = sync_source("session_services")
    assert result.ok, result.error
    assert_equals_truth(session_services)


def test_concurrency_below_one_is_named(session_services: SessionServicesApi,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__SESSION_SERVICES__CONCURRENCY", "0")
    result = sync_source("session_services")
    assert not result.ok and "setting concurrency is invalid" in (result.error or "")
    assert len((result.error or "").splitlines()) == 1
    assert not session_services.requests, "nothing is read with a bad setting"


def test_a_warehouse_with_the_old_items_layout_gets_one_line_naming_the_reset(
        session_services: SessionServicesApi) -> None:
    """A warehouse loaded before items were their own table (dlt's child table of `orders`)
    refuses the new layout: the sync says so in one line naming the command that fixes it,
    moves no checkpoint, and that command followed by a sync loads the truth."""
    import dlt

    @dlt.source(name="session_services")
    def older() -> Any:  # what the version before wrote: orders with nested items
        @dlt.resource(name="orders", write_disposition="merge", primary_key="id")
        def orders() -> Iterator[Dict[str, Any]]:
            yield {"id": "ord_old", "tenant_id": A, "items": [{"sku": "x", "quantity": 1}]}
        return orders

    make_pipeline("session_services", "duckdb", None).run(older())
    failed = sync_source("session_services")
    assert not failed.ok and "\n" not in (failed.error or "")
    assert "sessionsync reset session_services" in (failed.error or ""), failed.error
    assert "orders__items" in (failed.error or ""), failed.error
    assert run_cli("reset", "session_services", "--yes").returncode == 0
    assert sync_source("session_services").ok
    assert_equals_truth(session_services)


@pytest.mark.parametrize("where", ["duckdb", "parquet"])
def test_a_new_order_or_ticket_field_reaches_the_warehouse(
        session_services: SessionServicesApi, where: str) -> None:
    """The API starts sending a field on orders and tickets: its values are loaded (a new
    column, as for every other table), not dropped because the Arrow page shape lacks it."""
    assert sync_source("session_services", where).ok
    order = session_services.truth(A, "orders")[0]
    ticket = session_services.truth(A, "tickets")[0]
    session_services.advance(60)
    session_services._touch(session_services.tenants[A].orders.by_id[order["id"]],
                            promoCode="EARLYBIRD")
    session_services._touch(session_services.tenants[A].tickets.by_id[ticket["id"]],
                            seatLabel="B12")
    session_services.advance(60)
    result = sync_source("session_services", where)
    assert result.ok, result.error
    assert loaded("orders", where)[order["id"]].get("promo_code") == "EARLYBIRD"
    assert loaded("tickets", where)[ticket["id"]].get("seat_label") == "B12"
    assert sum(1 for o in loaded("orders", where).values() if o.get("promo_code")) == 1


@pytest.mark.parametrize("where", ["duckdb", "parquet"])
def test_a_new_field_inside_a_nested_object_or_an_order_line_reaches_the_warehouse(
        session_services: SessionServicesApi, where: str) -> None:
    """The API starts sending a field inside `customer`, inside an order's line and inside a
    ticket's `attendee`: each is loaded as a column (`customer__phone`, `orders__items`
    `seat_row`, `attendee__company`), the way dlt flattens dicts, not dropped by the Arrow
    page shape."""
    assert sync_source("session_services", where).ok
    tenant = session_services.tenants[A]
    order = next(o for o in tenant.orders.by_id.values() if o["items"])
    ticket = tenant.tickets.by_id[session_services.truth(A, "tickets")[0]["id"]]
    session_services.advance(60)
    items = [dict(i) for i in order["items"]]
    items[0]["seatRow"] = "K"
    session_services._touch(order, customer={**order["customer"], "phone": "+64 21 555 0100"},
                            items=items)
    session_services._touch(ticket, attendee={**ticket["attendee"], "company": "Quay Ltd"})
    session_services.advance(60)
    result = sync_source("session_services", where)
    assert result.ok, result.error
    assert loaded("orders", where)[order["id"]].get("customer__phone") == "+64 21 555 0100"
    assert loaded("tickets", where)[ticket["id"]].get("attendee__company") == "Quay Ltd"
    with connect(where, resolve_location(where, None)) as con:
        rows = con.execute("SELECT line, seat_row FROM session_services.orders__items "
                           "WHERE order_id = ? ORDER BY line", [order["id"]]).fetchall()
    assert rows[0] == (0, "K"), rows
    assert all(seat is None for _, seat in rows[1:]), rows
    assert_equals_truth(session_services, where)


def test_a_field_of_another_type_fails_the_run_naming_it_and_loses_nothing(
        session_services: SessionServicesApi) -> None:
    """An order whose `total` arrives as text, and then a ticket whose attendee's email is
    a number: each run fails with one line naming the field and the types, never the value;
    nothing of the run is committed, and once the API sends the contract's types again the
    next sync loads every change."""
    assert sync_source("session_services").ok
    tenant = session_services.tenants[A]
    order = tenant.orders.by_id[session_services.truth(A, "orders")[0]["id"]]
    ticket = tenant.tickets.by_id[session_services.truth(A, "tickets")[0]["id"]]
    total, email = order["total"], ticket["attendee"]["email"]
    before = loaded("orders")[order["id"]]
    session_services.advance(60)
    session_services._touch(order, total="4111 1111 1111 1111")
    session_services.advance(60)
    failed = sync_source("session_services")
    assert not failed.ok
    assert failed.error is not None and "\n" not in failed.error
    assert "total holds str where the API's contract has an integer" in failed.error, \
        failed.error
    assert "4111" not in failed.error
    assert loaded("orders")[order["id"]] == before
    session_services._touch(order, total=total + 1)
    session_services._touch(ticket, attendee={**ticket["attendee"], "email": 4111111111111111})
    session_services.advance(60)
    failed = sync_source("session_services")
    assert not failed.ok and "attendee.email holds int" in (failed.error or ""), failed.error
    assert "4111" not in (failed.error or "")
    session_services._touch(ticket, attendee={**ticket["attendee"], "email": email})
    session_services.advance(60)
    result = sync_source("session_services")
    assert result.ok, result.error
    assert loaded("orders")[order["id"]]["total"] == total + 1
    assert_equals_truth(session_services)


def test_a_new_field_of_mixed_types_fails_naming_it_never_a_value(
        session_services: SessionServicesApi) -> None:
    """A field the contract does not name, a number on one ticket and text on another of the
    same page: the run fails with one line naming the field and its types, no value."""
    assert sync_source("session_services").ok
    tenant = session_services.tenants[A]
    first = tenant.tickets.by_id[session_services.truth(A, "tickets")[0]["id"]]
    second = next(t for t in tenant.tickets.by_id.values()
                  if t["eventId"] == first["eventId"] and t["id"] != first["id"])
    session_services.advance(60)
    session_services._touch(first, attendee={**first["attendee"], "phone": 5550100})
    session_services._touch(second, attendee={**second["attendee"], "phone": "+64 21 555 0100"})
    order = next(o for o in tenant.orders.by_id.values() if o["eventId"] == first["eventId"])
    session_services._touch(order)  # a changed order of the event: its tickets are read
    session_services.advance(60)
    failed = sync_source("session_services")
    assert not failed.ok and failed.error is not None and "\n" not in failed.error
    assert "attendee.phone, a field the contract does not name, holds int/str" in failed.error, \
        failed.error
    assert "555" not in failed.error

"""Session Services source: venues, events, admissions, orders and tickets of many tenants.

Collections are ascending by id with opaque `after` cursors and no `updatedAt` filter. Each run,
per tenant, reads only what can hold something new or changed and emits only records whose
`updatedAt` is at or after the tenant's watermark (the server time its last successful run
began, less a margin):

- `orders`: from a stored page cursor whose page starts before the 60-day refund window, to the
  end: every new order and every order that can still change. Page cursors are kept in state.
- `events` and `venues`: the whole (small) lists, soft-deleted events included.
- `admissions`: per event still on sale (UPCOMING or ACTIVE) or changed this run.
- `tickets`: per event whose entry window was open since the tickets watermark (check-in
  and check-out scans), and per order changed since then (new tickets, refund cancellations).

Resources are evaluated in declaration order (`[extract] next_item_mode = "fifo"`), so
`tickets` reuses what `orders` and `events` read in the same run instead of reading it again.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Dict, Iterator, List, Optional, Tuple

import dlt
from dlt.common.schema.typing import TColumnSchema
from dlt.sources import DltResource

from sources import checkpoint, partitions
from sources.hints import MERGE
from sources.http import PARTITION_STATUSES, ApiClient, ApiError, HttpConfig, SyncError
from sources.session_services.client import SOURCE, AfterCursorPaginator, make_client
from sources.session_services.settings import (
    LADDER_MAX,
    MUTABLE_DAYS,
    ORDER_READS_PER_EVENT,
    WATERMARK_MARGIN_SECONDS,
)
from sources.timeutil import format_ms, parse_ts

log = logging.getLogger("sessionsync")
Records = List[Dict[str, Any]]
TIMESTAMPS = ("created_at", "updated_at")


@dlt.source(name=SOURCE)
def session_services_source(
    base_url: str = "https://api.session.services",
    tenant_tokens: Dict[str, str] = dlt.secrets.value,
    start_date: str = "2024-01-01",
    http: HttpConfig = dlt.config.value,
) -> List[DltResource]:
    """Session Services records of every tenant in `tenant_tokens`.

    Args:
        base_url: scheme, host and port of the API.
        tenant_tokens: tenant id -> JWT issued for that tenant (secret).
        start_date: ISO date; orders and tickets created before it are not loaded.
        http: timeouts and retry policy.
    """
    if not isinstance(tenant_tokens, dict) or not tenant_tokens:
        raise SyncError(f"{SOURCE}: tenant_tokens must be a JSON object of tenant id -> token")
    try:
        start = format_ms(parse_ts(start_date))
    except (TypeError, ValueError) as exc:
        raise SyncError(f"{SOURCE}: setting start_date is invalid: {exc}") from None
    tenants = [_Tenant(tid, make_client(base_url, tid, token, http))
               for tid, token in tenant_tokens.items()]

    def each_tenant(name: str) -> Iterator[Tuple[_Tenant, Dict[str, Any]]]:
        """The tenants still in good standing, each with this resource's state for it."""
        state = dlt.current.resource_state().setdefault("tenants", {})
        for tenant in tenants:
            if not tenant.failed:
                yield tenant, state.setdefault(tenant.id, {})

    def table(name: str, **hints: Any) -> Any:
        columns: Dict[str, TColumnSchema] = {
            c: {"data_type": "timestamp"} for c in TIMESTAMPS + hints.pop("ts", ())}
        columns.update({c: {"data_type": "text"} for c in hints.pop("text", ())})
        return dlt.resource(name=name, primary_key="id", write_disposition=MERGE,
                            columns=columns, **hints)

    @table("orders", nested_hints={"items": dlt.mark.make_nested_hints(
        columns={"section_id": {"name": "section_id", "data_type": "text"}})})
    def orders() -> Iterator[Records]:
        for tenant, st in each_tenant("orders"):
            with tenant.guard():
                yield from _orders(tenant, st, start)

    @table("events", ts=("entry_starts_at", "entry_ends_at", "publish_at", "deleted_at"),
           text=("location__state",))
    def events() -> Iterator[Records]:
        for tenant, st in each_tenant("events"):
            with tenant.guard():
                rows = _changed(tenant, tenant.events(), st)
                yield rows
                checkpoint.advance(st, "watermark", tenant.watermark(), wrote=bool(rows))

    @table("venues")
    def venues() -> Iterator[Records]:
        for tenant, st in each_tenant("venues"):
            with tenant.guard():
                wrote = False
                for records, _ in AfterCursorPaginator(tenant.client, "/venues", "venues").pages():
                    rows = _changed(tenant, records, st)
                    wrote = wrote or bool(rows)
                    yield rows
                checkpoint.advance(st, "watermark", tenant.watermark(), wrote)

    @table("admissions")
    def admissions() -> Iterator[Records]:
        for tenant, st in each_tenant("admissions"):
            with tenant.guard():
                since = st.get("watermark")
                due = [e["id"] for e in tenant.events()
                       if since is None or e["updatedAt"] >= since
                       or (e["status"] in ("UPCOMING", "ACTIVE") and "deletedAt" not in e)]
                wrote = False
                for event_id in due:
                    for records, _ in AfterCursorPaginator(
                            tenant.client, f"/events/{event_id}/admissions", "admissions").pages():
                        rows = _changed(tenant, records, st)
                        wrote = wrote or bool(rows)
                        yield rows
                checkpoint.advance(st, "watermark", tenant.watermark(), wrote)

    @table("tickets", ts=("scanned_at",), text=("section_id",))
    def tickets() -> Iterator[Records]:
        for tenant, st in each_tenant("tickets"):
            with tenant.guard():
                wrote = False
                for params in _ticket_reads(tenant, st.get("watermark")):
                    for records, _ in AfterCursorPaginator(tenant.client, "/tickets", "tickets",
                                                           params).pages():
                        rows = _changed(tenant, [r for r in records if r["createdAt"] >= start],
                                        st)
                        wrote = wrote or bool(rows)
                        yield rows
                checkpoint.advance(st, "watermark", tenant.watermark(), wrote)

    return [orders, events, venues, admissions, tickets]


class _Tenant:
    """One tenant within one run: its client, its standing, and what the run has read."""

    def __init__(self, tenant_id: str, client: ApiClient) -> None:
        self.id, self.client = tenant_id, client
        self.failed = False
        self.started: Optional[datetime] = None
        self._events: Optional[Records] = None
        self.order_changes: Optional[List[Tuple[str, str, str]]] = None  # id, eventId, updatedAt

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Turn a refusal of this tenant (401/403/404) into a partition failure."""
        try:
            yield
        except ApiError as exc:
            if exc.status not in PARTITION_STATUSES:
                raise
            self.failed = True
            partitions.report(str(exc))

    def now(self) -> datetime:
        """The server's clock (the `Date` of its latest response); fetches once if needed."""
        if self.client.last_date is None:
            self.client.get_json("/venues", params={"limit": 1})
        now = self.client.server_time()
        if self.started is None:
            self.started = now
        return now

    def watermark(self) -> str:
        """Where the next run's change filter starts: when this run began, less a margin."""
        self.now()
        assert self.started is not None
        return format_ms(self.started - timedelta(seconds=WATERMARK_MARGIN_SECONDS))

    def events(self) -> Records:
        """Every event, live and soft-deleted, read once per run."""
        if self._events is None:
            self.now()
            found: Records = []
            for deleted in ("false", "true"):
                for records, _ in AfterCursorPaginator(self.client, "/events", "events",
                                                       {"deleted": deleted}).pages():
                    found.extend(records)
            self._events = found
        return self._events


def _changed(tenant: _Tenant, records: Records, state: Dict[str, Any]) -> Records:
    """Records updated at or after the watermark, each stamped with its tenant."""
    since = state.get("watermark")
    return [dict(r, tenantId=tenant.id) for r in records
            if since is None or r["updatedAt"] >= since]


def _orders(tenant: _Tenant, st: Dict[str, Any], start: str) -> Iterator[Records]:
    """Scan orders from the stored page whose orders can still change; yield changed ones."""
    since = st.get("watermark")
    begin = _window_start(st.get("ladder", []), since)
    ladder: List[List[Any]] = []
    changes: List[Tuple[str, str, str]] = []
    wrote = False
    for records, cursor in _order_pages(tenant, begin):
        if records:
            ladder.append([cursor, records[0]["createdAt"]])
        changes.extend((r["id"], r["eventId"], r["updatedAt"]) for r in records)
        rows = [dict(r, tenantId=tenant.id) for r in records
                if r["createdAt"] >= start and (since is None or r["updatedAt"] >= since)]
        if rows:
            wrote = True
            yield rows
    tenant.order_changes = changes
    if wrote or st.get("ladder") is None:  # the ladder only grows with new orders
        st["ladder"] = _thin(ladder)
    checkpoint.advance(st, "watermark", tenant.watermark(), wrote)


def _order_pages(tenant: _Tenant, begin: Optional[List[Any]]
                 ) -> Iterator[Tuple[Records, Optional[str]]]:
    """Orders pages from the stored ladder entry `begin` ([cursor, first createdAt of its
    page]), or from the first page.

    The page at a stored cursor must still begin with the order it began with. Orders are
    listed by ascending, time-ordered id, so it does unless the answer is stale, for example
    a cache or a repeated response. A stale page ending the list (`after: null`) would end
    the scan early and silently skip every later order. The chaos soak found exactly that
    (seed 8048). So a page that does not match is not trusted: the scan starts over from the
    first page, which reads more and loses nothing.
    """
    if begin is not None and begin[0] is not None:
        pages = AfterCursorPaginator(tenant.client, "/orders", "orders", start=begin[0]).pages()
        first = next(pages, None)
        if first is not None and first[0] and first[0][0].get("createdAt") == begin[1]:
            yield first
            yield from pages
            return
        pages.close()
        log.warning("%s: the orders page at a stored cursor changed; reading from the start",
                    tenant.client.source)
    yield from AfterCursorPaginator(tenant.client, "/orders", "orders").pages()


def _window_start(ladder: List[List[Any]], since: Optional[str]) -> Optional[List[Any]]:
    """The ladder entry to start from: the last page that begins before the refund window.

    Every order before that page is older than the window and can no longer change. The
    window is measured back from the previous run's start (`since`), which is earlier than
    now, so it errs on the side of reading more; no watermark (first run) reads everything.
    """
    if since is None:
        return None
    cutoff = format_ms(parse_ts(since) - timedelta(days=MUTABLE_DAYS))
    begin: Optional[List[Any]] = None
    for entry in ladder:
        if entry[1] <= cutoff:
            begin = entry
    return begin


def _thin(ladder: List[List[Any]]) -> List[List[Any]]:
    """Keep at most LADDER_MAX cursors, always the first (costs at most a few extra pages)."""
    step = max(1, -(-len(ladder) // LADDER_MAX))
    return ladder[::step]


def _ticket_reads(tenant: _Tenant, since: Optional[str]) -> List[Dict[str, str]]:
    """The `/tickets` queries that cover every ticket that may have changed since `since`.

    A first run reads every event. Later runs read whole the events whose entry window has
    been open since `since` (scans have no filter), and, for orders changed since then
    (new tickets, cancellations on refund), each order's tickets, or its event's when the
    event has more than ORDER_READS_PER_EVENT changed orders.
    """
    events = tenant.events()
    if since is None:
        return [{"eventId": e["id"]} for e in events]
    if tenant.order_changes is None:  # `orders` not selected this run: read its window
        for _ in _orders(tenant, dict(dlt.current.resource_state("orders").get(
                "tenants", {}).get(tenant.id, {})), start=""):
            pass
    now = format_ms(tenant.now())
    whole = {e["id"] for e in events if e["entryEndsAt"] >= since and e["entryStartsAt"] <= now}
    changed: Dict[str, List[str]] = {}
    for order_id, event_id, updated in tenant.order_changes or []:
        if updated >= since and event_id not in whole:
            changed.setdefault(event_id, []).append(order_id)
    whole |= {e for e, orders in changed.items() if len(orders) > ORDER_READS_PER_EVENT}
    reads = [{"eventId": e} for e in sorted(whole)]
    reads += [{"orderId": o} for e, orders in sorted(changed.items()) if e not in whole
              for o in orders]
    return reads

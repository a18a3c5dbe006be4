"""Session Services source: venues, events, admissions, orders and tickets of many tenants.

Collections are ascending by id with opaque `after` cursors and no `updatedAt` filter. Each run,
per tenant, reads only what can hold something new or changed and emits only records whose
`updatedAt` is at or after the tenant's watermark (the server time its last successful run
began, read before any of its reads, less a margin):

- `orders`: from a stored page cursor whose page starts before the 60-day refund window, to the
  end: every new order and every order that can still change. Page cursors are kept in state.
- `events` and `venues`: the whole (small) lists, soft-deleted events included.
- `admissions`: per event still on sale (UPCOMING or ACTIVE) or changed this run.
- `tickets`: per event whose entry window was open since the tickets watermark (check-in
  and check-out scans, plus `SCAN_GRACE_HOURS` for late check-outs), and per order changed
  since then (new tickets, refund cancellations).
- the rolling re-read (`recheck.py`): a slice of the older orders pages and of the other
  events' tickets and admissions each run, so changes nothing signals (a dispute after the
  refund window, a scan outside the entry window) arrive within
  2 x (`recheck_hours` + the time between runs + 1 hour); see the README's freshness table.

`tickets` follows the orders `orders` found changed in the same run: `orders` hands them over
per tenant (`sources.depends`); when `orders` is not selected, `tickets` reads the orders
window itself. The events lists are read once per run per tenant and shared.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

import dlt
import pyarrow as pa
from dlt.common.schema.typing import TColumnSchema
from dlt.sources import DltResource

from sources import checkpoint, fanout, scan
from sources.batches import Batches
from sources.depends import Handoff
from sources.errors import SyncError
from sources.hints import MERGE
from sources.http import ApiClient, HttpConfig, segment
from sources.session_services import arrow, recheck
from sources.session_services.client import SOURCE, AfterCursorPaginator, make_client
from sources.session_services.settings import (
    LADDER_MAX,
    MUTABLE_DAYS,
    ORDER_READS_PER_EVENT,
    ORDER_SCHEMA,
    SCAN_GRACE_HOURS,
    TICKET_SCHEMA,
    WATERMARK_MARGIN_SECONDS,
)
from sources.timeutil import format_ms, parse_ts

log = logging.getLogger("sessionsync")
Records = List[Dict[str, Any]]
Change = Tuple[str, str, str]  # an order read this run: id, eventId, updatedAt
Sweep = Tuple[List[str], Optional[str], Dict[str, Any]]  # `recheck.sweep_events`
# a per-event read: path, records key, query, emit from updatedAt, which records to keep
ListRead = Tuple[str, str, Optional[Dict[str, Any]], Optional[str],
                 Optional[Callable[[Dict[str, Any]], bool]]]
TIMESTAMPS = ("created_at", "updated_at")
T = TypeVar("T")


@dlt.source(name=SOURCE)
def session_services_source(
    base_url: str = "https://api.session.services",
    tenant_tokens: Dict[str, str] = dlt.secrets.value,
    start_date: str = "2024-01-01",
    http: HttpConfig = dlt.config.value,
    recheck_hours: float = 168.0,
    concurrency: int = 8,
) -> List[DltResource]:
    """Session Services records of every tenant in `tenant_tokens`.

    Args:
        base_url: scheme, host and port of the API.
        tenant_tokens: tenant id -> JWT issued for that tenant (secret).
        start_date: ISO date; orders and tickets created before it are not loaded.
        http: timeouts and retry policy.
        recheck_hours: the rolling re-read covers every older order and every event's
            tickets once in this many hours (0: all of them every run). A change nothing
            signals reaches the warehouse within 2 x (this + the time between runs + 1 h);
            each run reads the share (time since the last run) / recheck_hours of them.
        concurrency: requests in flight at once per tenant: the per-event lists (tickets,
            admissions) are paged together, and the orders pages a little ahead of the reader.
            Tenants are read at once (each orders scan is a `sources.scan.Scan`).
    """
    if not isinstance(tenant_tokens, dict) or not tenant_tokens:
        raise SyncError(f"{SOURCE}: tenant_tokens must be a JSON object of tenant id -> token")
    try:
        hours = float(recheck_hours)
        if not hours >= 0:
            raise ValueError("must be 0 or more")
    except (TypeError, ValueError) as exc:
        raise SyncError(f"{SOURCE}: setting recheck_hours is invalid: {exc}") from None
    try:
        workers = int(concurrency)
        if workers < 1:
            raise ValueError("must be 1 or more")
    except (TypeError, ValueError) as exc:
        raise SyncError(f"{SOURCE}: setting concurrency is invalid: {exc}") from None
    try:
        start = format_ms(parse_ts(start_date))
    except (TypeError, ValueError) as exc:
        raise SyncError(f"{SOURCE}: setting start_date is invalid: {exc}") from None
    tenants = [_Tenant(tid, make_client(base_url, tid, token, http), workers)
               for tid, token in tenant_tokens.items()]
    changes: Handoff[List[Change]] = Handoff(SOURCE, "orders")

    def each_tenant(read: Callable[[_Tenant, Dict[str, Any]], Iterator[Records]]
                    ) -> Iterator[Records]:
        """`read(tenant, this resource's state for it)` of each tenant in good standing."""
        return scan.each(tenants, "tenants", read)

    def table(name: str, **hints: Any) -> Any:
        columns: Dict[str, TColumnSchema] = {
            c: {"data_type": "timestamp"} for c in TIMESTAMPS + hints.pop("ts", ())}
        columns.update({c: {"data_type": "text"} for c in hints.pop("text", ())})
        return dlt.resource(name=name, primary_key="id", write_disposition=MERGE,
                            columns=columns, **hints)

    def arrow_table(name: str, schema: pa.Schema) -> Any:
        return dlt.resource(name=name, primary_key="id", write_disposition=MERGE,
                            columns=schema)

    @arrow_table("orders", ORDER_SCHEMA)
    def orders() -> Iterator[pa.Table]:
        """Orders with their `items` (split off into `orders__items` after de-duplication),
        every tenant's scan paged at once (`sources.scan.run`)."""
        scans = _begun(tenants, lambda tenant, st: _OrdersScan(tenant, st, start, hours,
                                                               changes))
        for batch in scan.run(scans, len(scans)):
            yield arrow.typed(batch, ORDER_SCHEMA)

    orders.add_yield_map(_split_items)

    @table("events", ts=("entry_starts_at", "entry_ends_at", "publish_at", "deleted_at"),
           text=("location__state",))
    def events() -> Iterator[Records]:
        def read(tenant: _Tenant, st: Dict[str, Any]) -> Iterator[Records]:
            rows = _changed(tenant, tenant.events(), st.get("watermark"))
            yield rows
            checkpoint.advance(st, "watermark", tenant.watermark(), wrote=bool(rows))
        yield from each_tenant(read)

    @table("venues")
    def venues() -> Iterator[Records]:
        def read(tenant: _Tenant, st: Dict[str, Any]) -> Iterator[Records]:
            wrote = False
            for records, _ in tenant.pages("/venues", "venues"):
                rows = _changed(tenant, records, st.get("watermark"))
                wrote = wrote or bool(rows)
                yield rows
            checkpoint.advance(st, "watermark", tenant.watermark(), wrote)
        yield from each_tenant(read)

    @table("admissions")
    def admissions() -> Iterator[Records]:
        def read(tenant: _Tenant, st: Dict[str, Any]) -> Tuple[Optional[Sweep], List[ListRead]]:
            since = st.get("watermark")
            due = {e["id"]: since for e in tenant.events()
                   if since is None or e["updatedAt"] >= since
                   or (e["status"] in ("UPCOMING", "ACTIVE") and "deletedAt" not in e)}
            sweep = _sweep_events(tenant, st, hours)
            if sweep is not None:  # the rolling re-read: edits of events not on sale
                again, floor, _ = sweep
                due.update({e: _earlier(floor, due.get(e, floor)) for e in again})
            return sweep, [(f"/events/{segment(e)}/admissions", "admissions", None, floor, None)
                           for e, floor in due.items()]
        for tenant, records in _read_changed(tenants, read):
            yield _changed(tenant, records, None)

    @arrow_table("tickets", TICKET_SCHEMA)
    def tickets() -> Iterator[pa.Table]:
        def read(tenant: _Tenant, st: Dict[str, Any]) -> Tuple[Optional[Sweep], List[ListRead]]:
            reads, sweep = _ticket_reads(tenant, st, hours, changes)
            return sweep, [("/tickets", "tickets", params, floor,
                            partial(_ticket_kept, start, reread))
                           for params, floor, reread in reads]
        batches = Batches()
        for tenant, records in _read_changed(tenants, read):
            batch = batches.add(arrow.page(records, TICKET_SCHEMA, tenant=tenant.id)
                                if records else None)
            if batch is not None:
                yield arrow.typed(batch, TICKET_SCHEMA)
        rest = batches.flush()
        if rest is not None:
            yield arrow.typed(rest, TICKET_SCHEMA)

    return [orders, events, venues, admissions, tickets]


class _Tenant(scan.Partition):
    """One tenant within one run: its client (its own token), its clock, its events lists.

    A tenant whose token or id is refused (401/403/404) fails alone.
    """

    def __init__(self, tenant_id: str, client: ApiClient, workers: int = 1) -> None:
        super().__init__(tenant_id, client, client.source)
        self.workers = workers
        self.started: Optional[datetime] = None
        self._events: Optional[Records] = None

    def begin(self) -> None:
        """Read the server's clock before the tenant's first read of the run (`now`)."""
        self.now()

    def now(self) -> datetime:
        """The server's clock (the `Date` of its latest response); fetches once if needed.

        The first call of a run fetches (the client is new), so `started` is the `Date` of a
        response received before any record was read: time passes while a run reads, and a
        record changed after its page was read must fall after the next run's watermark.
        """
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

    def pages(self, path: str, key: str, params: Optional[Dict[str, Any]] = None,
              start: Optional[str] = None) -> Iterator[Tuple[Records, Optional[str]]]:
        """The pages of one of this tenant's collections, each with the cursor that fetched it."""
        return AfterCursorPaginator(self.client, path, key, params, start).pages()

    def records(self, path: str, key: str, params: Optional[Dict[str, Any]]
                ) -> Iterator[Records]:
        """The records of each page of one of this tenant's collections."""
        for records, _ in self.pages(path, key, params):
            yield records

    def events(self) -> Records:
        """Every event, live and soft-deleted, read once per run, each once.

        An event soft-deleted between the reads of the two lists is in both; the deleted
        list is read second, so its copy (with `deletedAt`) is the one kept.
        """
        if self._events is None:
            self.now()
            found: Dict[str, Dict[str, Any]] = {}
            for deleted in ("false", "true"):
                for records, _ in self.pages("/events", "events", {"deleted": deleted}):
                    found.update((r["id"], r) for r in records)
            self._events = list(found.values())
        return self._events


def _split_items(item: Any) -> Iterator[Any]:
    """An orders batch without its `items`, then its lines for `orders__items`, merged the
    way `orders` is (`arrow.items_for`)."""
    if not isinstance(item, pa.Table):
        yield item
        return
    rows, lines = arrow.split_items(item)
    yield rows
    if lines.num_rows:
        yield arrow.items_for(dlt.current.source().resources["orders"], lines)


def _changed(tenant: _Tenant, records: Records, since: Optional[str]) -> Records:
    """Records updated at or after `since` (all when None), each stamped with its tenant."""
    return [dict(r, tenantId=tenant.id) for r in records
            if since is None or r["updatedAt"] >= since]


def _begun(tenants: List[_Tenant], make: Callable[[_Tenant, Dict[str, Any]], T]) -> List[T]:
    """`make(tenant, this resource's state for it)` for each tenant in good standing, after
    the tenant's clock read (`_Tenant.begin`); a tenant refused there fails alone."""
    state = scan.states("tenants")
    made: List[T] = []
    for tenant in tenants:
        if tenant.failed:
            continue
        with tenant.guard():
            tenant.begin()
            made.append(make(tenant, state.setdefault(tenant.id, {})))
    return made


@dataclass
class _Listed:
    """One tenant's per-event reads in one run (`_read_changed`)."""

    tenant: _Tenant
    st: Dict[str, Any]
    sweep: Optional[Sweep]
    reads: List[ListRead]
    wrote: bool = False


def _read_changed(tenants: List[_Tenant],
                  plan: Callable[[_Tenant, Dict[str, Any]],
                                 Tuple[Optional[Sweep], List[ListRead]]]
                  ) -> Iterator[Tuple[_Tenant, Records]]:
    """Page the `(path, key, params, floor, keep)` reads `plan(tenant, its state)` returns
    (and its events sweep), every tenant's at once, `workers` reads per tenant in flight
    (`sources.fanout`), and yield `(tenant, records)`: each page's records that `keep`
    accepts (all when None) updated at or after `floor`.

    A tenant the API refuses fails alone (`scan.Partition.fail`): what it yielded before
    stays, its state stays; any other error stops the run. Then every other tenant keeps its
    events sweep state and moves its watermark (both only with rows written, or hourly:
    `sources.checkpoint`), the `Date` of a response read before any of these reads.
    """
    planned = _begun(tenants, lambda tenant, st: _Listed(tenant, st, *plan(tenant, st)))
    streams = [((i, n), partial(p.tenant.records, path, key, params))
               for n in range(max((len(p.reads) for p in planned), default=0))
               for i, p in enumerate(planned) if n < len(p.reads)  # tenants in turn
               for path, key, params, _, _ in [p.reads[n]]]
    for message in fanout.interleave(streams, sum(p.tenant.workers for p in planned)):
        i, n = message.key
        listed = planned[i]
        if listed.tenant.failed:  # its other reads' pages are dropped
            continue
        if isinstance(message, fanout.Page):
            _, _, _, floor, keep = listed.reads[n]
            rows = [r for r in message.items if (keep is None or keep(r))
                    and (floor is None or r["updatedAt"] >= floor)]
            if rows:
                listed.wrote = True
                yield listed.tenant, rows
        elif message.error is not None:
            listed.tenant.fail(message.error)
    for listed in planned:
        if not listed.tenant.failed:
            now = listed.tenant.watermark()
            _store(listed.st, listed.sweep, now, listed.wrote)
            checkpoint.advance(listed.st, "watermark", now, listed.wrote)


@dataclass
class _OrdersPage:
    """A page of orders read by `_OrdersScan.pages`, with the cursor that fetched it; a page
    of the rolling re-read also carries its rows to emit and the sweep state after it."""

    records: Records
    cursor: Optional[str]
    rows: Optional[Records] = None
    sweep: Optional[Dict[str, Any]] = None


class _OrdersScan(scan.Scan[_Tenant, _OrdersPage]):
    """One tenant's orders in one run: from the stored page whose orders can still change to
    the end, then the older pages the rolling re-read has due (`recheck.sweep_orders`).

    Emits changed orders; once every page is read (`commit`) hands every order read, changed
    or not, to `tickets`, and moves the tenant's ladder, sweep and watermark. The watermark is
    the tenant's clock read in `_Tenant.begin`, before this scan's first page.
    """

    def __init__(self, tenant: _Tenant, st: Dict[str, Any], start: str, hours: float,
                 handoff: Handoff[List[Change]]) -> None:
        super().__init__(tenant)
        self.st, self.start, self.hours, self.handoff = st, start, hours, handoff
        self.since: Optional[str] = st.get("watermark")
        self.begin = _window_start(st.get("ladder", []), self.since)
        self.now = tenant.watermark()
        self.stored: Optional[Dict[str, Any]] = st.get("recheck")
        self.swept: Optional[Dict[str, Any]] = None  # the sweep state after its last page
        self.ladder: List[List[Any]] = []
        self.changes: List[Change] = []

    def pages(self) -> Iterator[_OrdersPage]:
        tenant = self.partition
        for records, cursor in _order_pages(tenant, self.begin):
            yield _OrdersPage(records, cursor)
        if self.stored is not None and self.begin is not None:
            for records, rows, read in recheck.sweep_orders(
                    lambda at: _order_pages(tenant, at), self.stored, self.begin, self.now,
                    self.hours, lambda r: r["createdAt"] >= self.start):
                yield _OrdersPage(records, None, rows, read)

    def take(self, page: _OrdersPage) -> Optional[pa.Table]:
        records = page.records
        self.changes.extend((r["id"], r["eventId"], r["updatedAt"]) for r in records)
        if page.sweep is None:
            if records:
                self.ladder.append([page.cursor, records[0]["createdAt"]])
            since = self.since
            rows = [r for r in records
                    if r["createdAt"] >= self.start and (since is None or r["updatedAt"] >= since)]
        else:
            self.swept, rows = page.sweep, page.rows or []
        return arrow.page(rows, ORDER_SCHEMA, True, self.partition.id) if rows else None

    def commit(self, wrote: bool) -> None:
        st, now = self.st, self.now
        sweep = self.swept or self.stored
        if sweep is None:  # a first run reads every order: the first cycle starts now
            first = self.ladder[0][1] if self.begin is None and self.ladder else None
            sweep = recheck.new_cycle(now, now if self.since is None else None, first)
        self.handoff.publish(self.changes, self.partition.id)
        if wrote or st.get("ladder") is None:  # the ladder only grows with new orders
            st["ladder"] = _thin(self.ladder)
        recheck.store(st, sweep, now, wrote)
        checkpoint.advance(st, "watermark", now, wrote)


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


def _sweep_events(tenant: _Tenant, st: Dict[str, Any], hours: float
                  ) -> Optional[Tuple[List[str], Optional[str], Dict[str, Any]]]:
    """This run's share of the rolling re-read of events (`recheck.sweep_events`), or None on
    a first run (which reads every event)."""
    if st.get("watermark") is None:
        return None
    return recheck.sweep_events([e["id"] for e in tenant.events()], st.get("recheck"),
                                tenant.watermark(), hours)


def _store(st: Dict[str, Any], sweep: Optional[Tuple[Any, Any, Dict[str, Any]]], now: str,
           wrote: bool) -> None:
    """Keep the events sweep state (a first run starts the first cycle now)."""
    recheck.store(st, sweep[2] if sweep else recheck.new_cycle(now, now, None), now, wrote)


Read = Tuple[Dict[str, str], Optional[str], bool]  # query, emit from updatedAt, re-read


def _ticket_reads(tenant: _Tenant, st: Dict[str, Any], hours: float,
                  handoff: Handoff[List[Change]]
                  ) -> Tuple[List[Read], Optional[Tuple[Any, Any, Dict[str, Any]]]]:
    """The `/tickets` queries that cover every ticket that may have changed since `since`,
    each with the `updatedAt` it emits from and whether it is a re-read.

    A first run reads every event. Later runs read whole the events whose entry window has
    been open since `since` (or closed less than SCAN_GRACE_HOURS before: late check-outs),
    and, for orders changed since then (new tickets, cancellations on refund), each order's
    tickets, or its event's when the event has more than ORDER_READS_PER_EVENT changed
    orders. The other events due in the rolling re-read are read again for scans outside
    those windows; a re-read emits from the previous cycle's start, or from the end of the
    grace after the event's window when its last whole read came later. Returns the reads
    and the events sweep state to store.
    """
    events = tenant.events()
    since = st.get("watermark")
    if since is None:
        return [({"eventId": e["id"]}, None, False) for e in events], None
    order_changes = handoff.get(tenant.id)
    if order_changes is None:  # `orders` not selected this run: read its window
        orders = _OrdersScan(tenant, dict(dlt.current.resource_state("orders").get(
            "tenants", {}).get(tenant.id, {})), "", hours, handoff)
        for page in orders.pages():
            orders.take(page)
        orders.commit(False)  # publishes; the state it moves is a copy
        order_changes = handoff.get(tenant.id)
    now = format_ms(tenant.now())
    grace = timedelta(hours=SCAN_GRACE_HOURS)
    ends = {e["id"]: format_ms(parse_ts(e["entryEndsAt"]) + grace) for e in events}
    whole = {e["id"] for e in events if ends[e["id"]] >= since and e["entryStartsAt"] <= now}
    changed: Dict[str, List[str]] = {}
    for order_id, event_id, updated in order_changes or []:
        if updated >= since and event_id not in whole:
            changed.setdefault(event_id, []).append(order_id)
    whole |= {e for e, orders in changed.items() if len(orders) > ORDER_READS_PER_EVENT}
    sweep = _sweep_events(tenant, st, hours)
    assert sweep is not None
    due, floor, _ = sweep
    # an event read whole and due for its re-read emits from the re-read's floor
    reads: List[Read] = [({"eventId": e}, _earlier(floor, since) if e in due else since, False)
                         for e in sorted(whole)]
    again = set(due) - whole
    reads += [({"orderId": o}, since, False) for e, orders in sorted(changed.items())
              if e not in whole | again for o in orders]
    # a re-read of an event with changed orders keeps their new tickets (each ticket once)
    reads += [({"eventId": e}, _later(floor, ends[e]) if ends[e] < since else floor,
               e not in changed) for e in sorted(again)]
    return reads, sweep


def _ticket_kept(start: str, reread: bool, ticket: Dict[str, Any]) -> bool:
    """Whether a ticket read is loaded: created after `start_date`, and, in a re-read, changed
    since it was created (a re-read keeps only what the regular reads could not see)."""
    return ticket["createdAt"] >= start and not (
        reread and ticket["updatedAt"] == ticket["createdAt"])


def _later(a: Optional[str], b: str) -> str:
    return b if a is None else max(a, b)


def _earlier(a: Optional[str], b: Optional[str]) -> Optional[str]:
    """The earlier of two emission floors (None, emit everything, is the earliest)."""
    return None if a is None or b is None else min(a, b)

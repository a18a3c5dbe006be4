"""Mobile Next source: organizations and their device sessions.

Sessions are listed newest first with a strictly-`before` cursor and no `updatedAt`, so each
run re-reads, per organization, only the window that can hold something new or changed: back to
the newest session already loaded, or further back to the oldest session that was still
unreleased (the platform releases within 24 hours). A full scan back to `start_date` runs every
`reconcile_every_hours` to find sessions deleted upstream outside that window. Rows are emitted
only when new or changed, compared with what the warehouse holds, so a quiet run loads nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import dlt
import pyarrow as pa
from dlt.sources import DltResource

from sources import partitions, scan
from sources.changes import Known, mark_deleted
from sources.errors import SyncError
from sources.hints import MERGE
from sources.http import PARTITION_STATUSES, ApiClient, HttpConfig
from sources.loaded import read_loaded, sql_literal, sql_timestamp
from sources.mobilenext.client import SOURCE, TieSafeBeforePaginator, make_client
from sources.mobilenext.settings import API_PREFIX, MAX_PAGE_SIZE, SESSION_SCHEMA
from sources.timeutil import arrow_times, epoch_ms, format_ms, from_epoch_ms, parse_ts


@dlt.source(name=SOURCE, max_table_nesting=0)
def mobilenext_source(
    base_url: str = "https://api.mobilenexthq.com",
    api_key: str = dlt.secrets.value,
    organization_ids: Sequence[str] = (),
    start_date: str = "2024-01-01",
    page_size: int = MAX_PAGE_SIZE,
    reconcile_every_hours: float = 24.0,
    concurrency: int = 8,
    http: HttpConfig = dlt.config.value,
    window: Optional[Sequence[str]] = None,
) -> List[DltResource]:
    """Mobile Next organizations and sessions.

    Args:
        base_url: scheme, host and port of the API.
        api_key: `mob_...` API key (secret).
        organization_ids: organizations to sync; empty means every one the key can see.
        start_date: ISO date or timestamp; sessions created before it are not loaded.
        page_size: sessions per list request (1..500).
        reconcile_every_hours: how often a run scans back to `start_date` to find deletions.
        concurrency: organizations paged at the same time.
        http: timeouts and retry policy.
        window: `[start, end)` ISO times for a backfill: sessions created in it are read
            (newest first, from `before = end`) and compared with the warehouse exactly like
            an incremental run, and no incremental state is read or written.
    """
    start = _setting("start_date", lambda: _api_time(parse_ts(start_date)))
    if not 1 <= int(page_size) <= MAX_PAGE_SIZE:
        raise SyncError(
            f"{SOURCE}: page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    if int(concurrency) < 1:
        raise SyncError(f"{SOURCE}: concurrency must be 1 or more, got {concurrency}")
    if not isinstance(organization_ids, (list, tuple)):
        raise SyncError(f"{SOURCE}: organization_ids must be a JSON list of organization ids")
    client = make_client(base_url, api_key, http)
    orgs = _OrgDirectory(client, list(organization_ids))

    @dlt.resource(name="organizations", primary_key="id", write_disposition=MERGE,
                  columns={"name": {"data_type": "text", "nullable": True}})
    def organizations() -> Iterator[List[Dict[str, Any]]]:
        """The selected organizations with the key's role in each; only new or changed ones."""
        rows = [
            {"id": o["id"], "name": o["name"], "type": o["type"], "role": o["role"],
             "created_at": parse_ts(o["createdAt"])}
            for o in orgs.selected()
        ]
        fields = ["id", "name", "type", "role", "created_at"]
        changed = Known.read("organizations", fields, "true").changed_rows(rows)
        if changed:
            yield changed

    @dlt.resource(name="sessions", primary_key="id", write_disposition=MERGE)
    def sessions() -> Iterator[pa.Table]:
        """New and changed sessions of every selected organization, deletions marked.

        Organizations are paged at once, `concurrency` at a time (`sources.scan`).
        """
        state = scan.states("orgs")
        bounds = (_setting("window", lambda: [_api_time(parse_ts(w)) for w in window])
                  if window else None)
        try:
            selected = orgs.selected()
            now = client.server_time()  # before any scan starts: a conservative "scanned at"
            scans = [_OrgScan(scan.Partition(org["id"], client,
                                             f"{SOURCE}: organization {org['id']}",
                                             # one key reads every organization: a 401
                                             # fails the run, not one organization
                                             PARTITION_STATUSES - {401}),
                              state, now, start, bounds, float(reconcile_every_hours),
                              int(page_size)) for org in selected]
            yield from scan.run(scans, int(concurrency))
        finally:
            client.close()

    return [organizations, sessions]


def _setting(name: str, parse: Callable[[], Any]) -> Any:
    try:
        return parse()
    except (TypeError, ValueError) as exc:
        raise SyncError(f"{SOURCE}: setting {name} is invalid: {exc}") from None


def _api_time(value: datetime) -> datetime:
    """`value` rounded up to a whole millisecond, the API's resolution.

    Every bound of a scan (`start_date`, a backfill window's ends) goes through here once, so
    the `before` sent, where paging stops and the comparison with the warehouse all use the
    same instant. Rounding up is exact: sessions carry whole milliseconds, so those created at
    or after `value` are exactly those created at or after it rounded up (a window ending at
    .123456 holds the sessions of .123, and `before=.124` lists them).
    """
    ms = epoch_ms(value)
    return from_epoch_ms(ms + 1 if from_epoch_ms(ms) < value else ms)


class _OrgDirectory:
    """The organizations to sync, listed once per run and shared by both resources."""

    def __init__(self, client: ApiClient, wanted: List[str]) -> None:
        self.client, self.wanted = client, wanted
        self._orgs: Optional[List[Dict[str, Any]]] = None

    def selected(self) -> List[Dict[str, Any]]:
        if self._orgs is None:
            visible = self.client.get_json(f"{API_PREFIX}/organizations")["data"]
            by_id = {o["id"]: o for o in visible}
            for org in self.wanted:
                if org not in by_id:
                    partitions.report(
                        f"{SOURCE}: the API key is not a member of organization {org}")
            self._orgs = [by_id[o] for o in self.wanted if o in by_id] if self.wanted else visible
        return self._orgs


class _OrgScan(scan.Scan[scan.Partition, Tuple[List[Dict[str, Any]], List[int]]]):
    """One organization's scan in one run: what to read, what is loaded, what was seen.

    State per organization: `newest` (newest createdAt loaded), `open_from` (createdAt of the
    oldest session still unreleased when last seen) and `reconciled_at` (server time of the
    last full scan). An incremental scan reaches back to the older of `newest` and
    `open_from`; a full one (first run, or `reconcile_every_hours` passed) to `start_date`;
    a backfill's (`bounds`) covers its window and uses no state.
    """

    def __init__(self, org: scan.Partition, states: Dict[str, Any], now: datetime,
                 start: datetime, bounds: Optional[List[datetime]],
                 reconcile_every_hours: float, page_size: int) -> None:
        super().__init__(org)
        self.states, self.now, self.page_size = states, now, page_size
        self.hi: Optional[datetime] = None  # sessions created before this (a window's end)
        self.newest: Optional[int] = None  # epoch ms
        self.open_from: Optional[int] = None  # epoch ms
        self.seen: Set[str] = set()
        state = states.get(org.id, {})
        self.reconciled_at: Optional[str] = state.get("reconciled_at")
        if bounds:
            self.bounded, self.full = True, False
            self.lo, self.hi = bounds[0], bounds[1]  # sessions created at or after `lo`
        else:
            self.full = not state or self.reconciled_at is None or (
                now - parse_ts(self.reconciled_at) >= timedelta(hours=reconcile_every_hours))
            marks = [parse_ts(state[k]) for k in ("newest", "open_from") if state.get(k)]
            self.lo = max(start, min(marks)) if marks and not self.full else start
            if state.get("newest"):
                self.newest = epoch_ms(parse_ts(state["newest"]))
        upto = f" AND created_at < {sql_timestamp(self.hi)}" if self.hi else ""
        self.known = Known.read(
            "sessions", ["id", "released_at"],
            f"organization = {sql_literal(org.id)} AND created_at >= "
            f"{sql_timestamp(self.lo)} AND deleted_at IS NULL{upto}")

    def pages(self) -> Iterator[Tuple[List[Dict[str, Any]], List[int]]]:
        return TieSafeBeforePaginator(self.partition.client, self.partition.id,
                                      self.page_size, self.lo, self.hi).pages()

    def take(self, page: Tuple[List[Dict[str, Any]], List[int]]) -> Optional[pa.Table]:
        """Note one page; the sessions in it that are new or changed, as Arrow, if any."""
        sessions, created = page
        if not sessions:
            return None
        self.seen.update(s["id"] for s in sessions)
        top = max(created)
        self.newest = top if self.newest is None else max(self.newest, top)
        open_ = [ms for s, ms in zip(sessions, created, strict=True) if s["releasedAt"] is None]
        if open_ and (self.open_from is None or min(open_) < self.open_from):
            self.open_from = min(open_)
        return self.known.changed(_sessions_table(sessions, created))

    def finish(self) -> Optional[pa.Table]:
        """The loaded sessions this complete scan did not list: deleted upstream."""
        gone = self.known.missing(self.seen)
        if gone is None:
            return None
        ids = ", ".join(sql_literal(i) for i in gone.column("id").to_pylist())
        loaded = read_loaded("sessions", SESSION_SCHEMA.names, f"id IN ({ids})")
        assert loaded is not None  # the ids came from the same table
        return mark_deleted(loaded.select(SESSION_SCHEMA.names).cast(SESSION_SCHEMA),
                            self.partition.client.server_time())

    def commit(self, wrote: bool) -> None:
        """The organization's state after this scan completed."""
        self.states[self.partition.id] = {
            "newest": format_ms(from_epoch_ms(self.newest)) if self.newest is not None else None,
            "open_from": (format_ms(from_epoch_ms(self.open_from))
                          if self.open_from is not None else None),
            "reconciled_at": format_ms(self.now) if self.full else self.reconciled_at,
        }


def _sessions_table(sessions: List[Dict[str, Any]], created: List[int]) -> pa.Table:
    """API session objects as an Arrow table (device flattened, timestamps typed); `created`
    is their `createdAt` in epoch ms, already parsed by the paginator."""
    device = [s["device"] for s in sessions]
    return pa.table({
        "id": [s["id"] for s in sessions],
        "organization": [s["organization"] for s in sessions],
        "user": [s["user"] for s in sessions],
        "device__id": [d["id"] for d in device],
        "device__platform": [d["platform"] for d in device],
        "device__type": [d["type"] for d in device],
        "device__name": [d["name"] for d in device],
        "device__os_version": [d["osVersion"] for d in device],
        "created_at": pa.array(created, pa.int64()).cast(pa.timestamp("ms", tz="UTC")).cast(
            SESSION_SCHEMA.field("created_at").type),
        "released_at": arrow_times([s["releasedAt"] for s in sessions]),
        "deleted_at": pa.nulls(len(sessions), SESSION_SCHEMA.field("deleted_at").type),
    }, schema=SESSION_SCHEMA)

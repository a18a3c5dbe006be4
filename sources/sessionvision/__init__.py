"""sessionvision source: events, sessions, persons and definitions of several projects.

Events are immutable but become visible up to 48 hours after their `timestamp`, and the API
filters them on `timestamp`. Each run, per project:

- `events`: lists events from the previous run's start (server time) less 48 hours, and
  emits those the warehouse does not hold yet. Cost: the new events plus that lookback.
- `sessions` and `persons` change when one of their events becomes visible (end time,
  counts and bounce; `last_seen`, identify and `$set`), so each run refreshes the sessions
  and persons of the events it just loaded: by id when they are few, by paging the list
  when they are many. The first run pages both lists whole. They also change with no event:
  a session when its inactivity timeout passes (each run re-reads those that may have been
  open when last read), a person identified or given properties through the platform (each
  run re-reads a rolling slice of `recheck_rows` persons). Those are written only if changed.
- definitions: the lists are small and read whole; rows whose content changed are emitted;
  action definitions that vanished (deleted upstream) get `deleted_at`.

`sessions` and `persons` need what `events` loaded in the same run: `events` hands it over
per project (`sources.depends`), and they refuse to run before it has.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple, cast

import dlt
import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.configuration import known_sections, with_config
from dlt.sources import DltResource

from sources import checkpoint, scan
from sources.byid import fetch_each
from sources.changes import Known, mark_deleted
from sources.depends import Handoff
from sources.errors import ApiError, SyncError
from sources.hints import MERGE
from sources.http import PARTITION_STATUSES, ApiClient, HttpConfig, segment
from sources.loaded import sql_literal, sql_timestamp
from sources.sessionvision.client import (
    EVENT_PAGE,
    PROMOTED_LIST,
    SOURCE,
    Event,
    NextCursorPaginator,
    make_client,
)
from sources.sessionvision.settings import (
    ACTION_DEFINITION_SCHEMA,
    BY_ID_MAX,
    CLOCK_MARGIN_SECONDS,
    EVENT_DEFINITION_SCHEMA,
    EVENT_SCHEMA,
    MAX_DELAY_HOURS,
    MAX_PAGE_SIZE,
    PERSON_SCHEMA,
    PROMOTED,
    PROPERTY_DEFINITION_SCHEMA,
    RECHECK_ROWS,
    SESSION_SCHEMA,
    SESSION_SPAN_HOURS,
    SESSION_TIMEOUT_MINUTES,
)
from sources.structs import raw_text
from sources.timeutil import arrow_times, format_ms, parse_ts

Records = List[Dict[str, Any]]


class _Project(scan.Partition):
    """One project within one run. The token is the same for every project, so a 401 fails
    the run; a project it may not read (403) or that does not exist (404) fails alone."""

    def __init__(self, project_id: str, client: ApiClient,
                 until: Optional[datetime] = None) -> None:
        super().__init__(project_id, client, f"{SOURCE} project {project_id}",
                         refused_by=PARTITION_STATUSES - {401})
        # a backfill window's end: only what its events touch is refreshed, and no session
        # they touch starts later
        self.until = until
        self.windowed = until is not None

    @property
    def path(self) -> str:
        return f"/api/v1/projects/{segment(self.id)}"


@dataclass
class _Touched:
    """What `events` loaded for a project this run, for `sessions` and `persons`."""

    sessions: Set[str] = field(default_factory=set)  # session ids of newly loaded events
    persons: Set[str] = field(default_factory=set)  # distinct ids of newly loaded events
    oldest_new: Optional[datetime] = None  # earliest timestamp among them
    since: Optional[datetime] = None  # `checked_at` before this run: earlier runs read after it


class _EventScan(scan.Scan[_Project, List[Event]]):
    """One project's events in one run: a backfill window, or everything since the previous
    run's start less the 48-hour visibility delay (since `start_date` at first); written when
    the warehouse does not hold them yet."""

    def __init__(self, project: _Project, st: Dict[str, Any], start: datetime,
                 bounds: Optional[List[datetime]], handoff: Handoff[_Touched],
                 since: Optional[str] = None) -> None:
        super().__init__(project)
        self.st, self.handoff = st, handoff
        self.touched = touched = _Touched()
        self.started: Optional[datetime] = None  # server time of the first page
        self.lo, self.hi = start, None
        checked = st.get("checked_at") or since  # `since`: a first sync's backfill read to it
        if bounds:
            self.bounded = True
            self.lo, self.hi = bounds[0], bounds[1]
        elif checked is not None:
            touched.since = parse_ts(checked)
            lookback = timedelta(hours=MAX_DELAY_HOURS, seconds=CLOCK_MARGIN_SECONDS)
            self.lo = max(start, touched.since - lookback)
        until = f" AND timestamp < {sql_timestamp(self.hi)}" if self.hi else ""
        self.known = Known.read("events", ["id"], f"project_id = {sql_literal(project.id)} "
                                f"AND timestamp >= {sql_timestamp(self.lo)}{until}",
                                compare=())

    def pages(self) -> Iterator[List[Event]]:
        """The page stream, on a fan-out thread (it notes its own `started`)."""
        client = self.partition.client
        params = {"date_from": format_ms(self.lo),
                  **({"date_to": format_ms(self.hi)} if self.hi else {})}
        for page in NextCursorPaginator(client, f"{self.partition.path}/events", params,
                                        decode=EVENT_PAGE).pages():
            if self.started is None:
                self.started = client.server_time()  # this thread's own response
            yield cast(List[Event], page)  # what EVENT_PAGE decodes

    def take(self, page: List[Event]) -> Optional[pa.Table]:
        """The page's events the warehouse does not hold; notes their sessions and persons."""
        table = self.known.changed(_event_table(page, self.partition.id)) if page else None
        if table is None:
            return None
        touched = self.touched
        touched.sessions.update(pc.unique(table["session_id"]).to_pylist())
        touched.persons.update(pc.unique(table["distinct_id"]).to_pylist())
        oldest = pc.min(table["timestamp"]).as_py()
        if touched.oldest_new is None or oldest < touched.oldest_new:
            touched.oldest_new = oldest
        return table

    def finish(self) -> None:
        self.handoff.publish(self.touched, self.partition.id)

    def commit(self, wrote: bool) -> None:
        checkpoint.advance(self.st, "checked_at", format_ms(
            self.started or self.partition.client.server_time()), wrote)


@dlt.source(name=SOURCE)
def sessionvision_source(
    base_url: str = "https://app.sessionvision.com",
    api_token: str = dlt.secrets.value,
    project_ids: List[str] = dlt.config.value,
    start_date: str = "2024-01-01",
    concurrency: int = 8,
    http: HttpConfig = dlt.config.value,
    window: Optional[List[str]] = None,
    recheck_rows: int = RECHECK_ROWS,
    since: Optional[str] = None,
    defer: bool = False,
) -> List[DltResource]:
    """Events, sessions, persons and definitions of every project in `project_ids`.

    Args:
        base_url: scheme and host of the API (paths are under `/api/v1`).
        api_token: personal API token (secret).
        project_ids: projects to sync.
        start_date: ISO date; the first run loads events and sessions from it.
        concurrency: requests in flight at once: by-id reads, or projects paged together.
        http: timeouts and retry policy.
        window: `[start, end)` ISO times for a backfill: events in it are read (`date_from`,
            `date_to`) and written if not yet loaded, and their sessions and persons
            refreshed, exactly like an incremental run; no incremental state is used.
        recheck_rows: persons per project re-read each run by the rolling slice, which
            catches identification and properties set with no event: every person is
            re-read within `ceil(persons / recheck_rows) + 1` slice moves (see README).
        since: ISO server time, for the run that takes over from a first sync's backfill
            (`pipelines.first_sync`), which read every event and session before it: a
            project with no state yet reads events as if its last run had started then,
            and only the sessions those events touch; persons are read whole as on any
            first run (their list has no time filter).
        defer: for a backfill run that is not its last: the persons its events touch are
            kept due in state (`pending`, committed with those events) for a later run,
            so a backfill of many loads pages the persons list once, not once per load.
    """
    if not isinstance(recheck_rows, int) or recheck_rows < 1:
        raise SyncError(f"{SOURCE}: setting recheck_rows must be a whole number of at least 1, "
                        f"got {recheck_rows!r}")
    if not isinstance(project_ids, list) or not project_ids:
        raise SyncError(f"{SOURCE}: project_ids must be a non-empty JSON list of project ids")
    try:
        start = parse_ts(start_date)
    except (TypeError, ValueError) as exc:
        raise SyncError(f"{SOURCE}: setting start_date is invalid: {exc}") from None
    try:
        bounds = [parse_ts(w) for w in window] if window else None
    except (TypeError, ValueError) as exc:
        raise SyncError(f"{SOURCE}: backfill window is invalid: {exc}") from None
    client = make_client(base_url, api_token, http)
    projects = [_Project(str(pid), client, bounds[1] if bounds else None)
                for pid in project_ids]
    touched: Handoff[_Touched] = Handoff(SOURCE, "events")

    def table(name: str, schema: pa.Schema, key: Any = "id") -> Any:
        return dlt.resource(name=name, primary_key=key, write_disposition=MERGE, columns=schema)

    @table("events", EVENT_SCHEMA)
    def events() -> Iterator[pa.Table]:
        """New events of every project; projects are paged at once (`sources.scan`)."""
        states = scan.states("projects")
        yield from scan.run([_EventScan(p, states.setdefault(p.id, {}), start, bounds, touched,
                                        since) for p in projects if not p.failed], concurrency)

    @table("sessions", SESSION_SCHEMA)
    def sessions() -> Iterator[pa.Table]:
        def read(project: _Project, st: Dict[str, Any]) -> Iterator[pa.Table]:
            news = touched.get(project.id)
            if since and not project.windowed and news is not None:
                st.setdefault("loaded", True)  # the backfill loaded those before `since`
            due, known = (news.sessions if news else None), Known(None)
            if due is not None and st.get("loaded"):
                known = _maybe_open(project, news).without(due)
                due = due | set(known.keys())
            yield from _changed_by_event(
                client, project, st, "sessions", due, concurrency,
                SESSION_SCHEMA, {"date_from": format_ms(start)}, news, known)
        yield from scan.each(projects, "projects", read)

    @table("persons", PERSON_SCHEMA)
    def persons() -> Iterator[pa.Table]:
        def read(project: _Project, st: Dict[str, Any]) -> Iterator[pa.Table]:
            news = touched.get(project.id)
            rechecking = st.get("loaded") and not project.windowed
            yield from _changed_by_event(
                client, project, st, "persons", news.persons if news else None, concurrency,
                PERSON_SCHEMA, {}, news, defer=defer and project.windowed)
            if rechecking and news is not None:
                yield from _recheck(client, project, st, "persons", recheck_rows,
                                    PERSON_SCHEMA, news)
            elif not project.windowed:  # the first run read the whole list just now
                st.setdefault("recheck_at", format_ms(client.server_time()))
        yield from scan.each(projects, "projects", read)

    def definitions(kind: str, key: str, schema: pa.Schema,
                    params: Optional[Dict[str, Any]] = None) -> Any:
        @table(kind, schema, ("project_id", key))
        def read_all() -> Iterator[pa.Table]:
            yield from scan.each(projects, "projects", lambda project, _: _definitions(
                client, project, kind, key, schema, params))
        return read_all

    return [events, sessions, persons,
            definitions("event_definitions", "name", EVENT_DEFINITION_SCHEMA),
            definitions("property_definitions", "key", PROPERTY_DEFINITION_SCHEMA),
            definitions("action_definitions", "id", ACTION_DEFINITION_SCHEMA,
                        {"include_archived": "true"})]


@with_config(sections=(known_sections.SOURCES, SOURCE))
def history(base_url: str = "https://app.sessionvision.com", api_token: str = dlt.secrets.value,
            project_ids: List[str] = dlt.config.value, start_date: str = "2024-01-01",
            http: HttpConfig = dlt.config.value) -> Tuple[datetime, datetime]:
    """What a first sync loads (configured as the source is): events and sessions from
    `start_date` to the API's clock now, the `Date` of one small response (any status), read
    before any of the first sync's reads, so the run that takes over from it (`since`) misses
    nothing that becomes visible meanwhile."""
    try:
        start = parse_ts(start_date)
    except (TypeError, ValueError) as exc:
        raise SyncError(f"{SOURCE}: setting start_date is invalid: {exc}") from None
    if not isinstance(project_ids, list) or not project_ids:
        raise SyncError(f"{SOURCE}: project_ids must be a non-empty JSON list of project ids")
    with make_client(base_url, api_token, http) as client:
        try:
            client.get_json(f"/api/v1/projects/{segment(str(project_ids[0]))}/"
                            "action_definitions", {"limit": 1})
        except ApiError:
            if client.last_date is None:  # no answer at all: the run itself reports why
                raise
        return start, client.server_time()


def _event_table(events: List[Event], project_id: str) -> pa.Table:
    """Events as Arrow: promoted `$` properties as columns, all properties as JSON text.

    The properties text is the API's own, as sent (no dict per event, no re-encoding);
    an event without properties (absent or null) gets `{}`.
    """
    raws = [e.properties for e in events]
    try:
        promoted = PROMOTED_LIST.decode(b"[" + b",".join(raws) + b"]")
    except msgspec.ValidationError as exc:
        raise SyncError(f"{SOURCE}: an event's properties are not a JSON object ({exc})"
                        ) from None
    columns: Dict[str, Any] = {
        "id": [e.id for e in events],
        "project_id": [project_id] * len(events),
        "event": [e.event for e in events],
        "distinct_id": [e.distinct_id for e in events],
        "session_id": [e.session_id for e in events],
        "timestamp": arrow_times([e.timestamp for e in events]),
    }
    none = (None,) * len(PROMOTED)
    rows = [none if p is None else msgspec.structs.astuple(p) for p in promoted]
    for i, column in enumerate(PROMOTED.values()):
        columns[column] = _text_column([row[i] for row in rows])
    properties = raw_text(raws)
    columns["properties"] = pc.if_else(pc.equal(properties, "null"), "{}", properties)
    return pa.table(columns, schema=EVENT_SCHEMA)


def _text_column(values: List[Any]) -> pa.Array:
    """Values for a text column: strings as they are, anything else as JSON (one fast
    pass when all are strings or null, as they nearly always are)."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([_text(v) for v in values], pa.string())


def _changed_by_event(client: ApiClient, project: _Project, st: Dict[str, Any], kind: str,
                      due: Optional[Set[str]], concurrency: int, schema: pa.Schema,
                      list_params: Dict[str, Any], news: Optional[_Touched],
                      known: Optional[Known] = None, defer: bool = False) -> Iterator[pa.Table]:
    """Sessions or persons touched by this run's new events (all of them on a first run),
    and any other `due` ones; a record due with no new event (its loaded row in `known`)
    is written only when it differs from that row. `news` is what `events` handed over
    (None: `events` did not run, so nothing is known to be due).

    Few: read each by id. Many: page the list and keep the due ones (sessions from a day
    before the earliest new event; a session that started earlier is then read by id). A
    record listed twice (moved during paging) is kept twice; the runner keeps the later.
    `defer`: only note the due ones in state, for a later run to read.
    """
    key = "id" if kind == "sessions" else "distinct_id"
    known = known or Known(None)
    first_run = not st.get("loaded") and not project.windowed
    if not first_run and due is None:  # `events` not selected: nothing is known to be due
        return
    if not first_run:  # due in a run refused before it read them: the events that named
        # them are loaded now, so no later handoff names them again
        due = set(due or ()) | set(st.get("pending", ()))
        st["pending"] = sorted(due)
        if defer:
            return
    if first_run or len(due or ()) > BY_ID_MAX:
        params = dict(list_params)
        # sessions due for an event started a day before it at most; those maybe open
        # when last read ended after `since` less the timeout
        times = [t for t in (news.oldest_new, news.since) if t is not None] if news else []
        if not first_run and kind == "sessions" and times:
            params["date_from"] = format_ms(min(times) - timedelta(
                hours=SESSION_SPAN_HOURS, minutes=SESSION_TIMEOUT_MINUTES))
            if project.until is not None:  # not the sessions of every later window too
                params["date_to"] = format_ms(project.until)
        wanted, listed = set(due or ()), set[str]()
        for page in NextCursorPaginator(client, f"{project.path}/{kind}", params).pages():
            rows = [r for r in page if first_run or r[key] in wanted]
            listed.update(r[key] for r in rows)
            changed = known.changed(_table(rows, project.id, schema))
            if changed is not None:
                yield changed
        due = set() if first_run else wanted - listed  # started before the listed window
    paths = [f"{project.path}/{kind}/{segment(i)}" for i in sorted(due or ())]
    rows = [body for _, body in fetch_each(client, paths, concurrency) if body is not None]
    changed = known.changed(_table(rows, project.id, schema))
    if changed is not None:
        yield changed
    st.pop("pending", None)
    st["loaded"] = True


def _maybe_open(project: _Project, news: Optional[_Touched]) -> Known:
    """Loaded sessions that may have been open (inside their inactivity timeout) when a
    run last read them: they can still change with no new event, when the timeout passes.

    Every earlier read happened after `news.since` (a response before them), so a
    session read open then ends after `since` less the timeout; once a run reads it after
    its timeout has passed, its end is older than that run's `since` and it drops out.
    """
    if news is None or news.since is None or project.windowed:
        return Known(None)
    horizon = news.since - timedelta(minutes=SESSION_TIMEOUT_MINUTES,
                                     seconds=CLOCK_MARGIN_SECONDS)
    return _loaded("sessions", SESSION_SCHEMA, project, f"end_time >= {sql_timestamp(horizon)}")


def _recheck(client: ApiClient, project: _Project, st: Dict[str, Any], kind: str,
             rows: int, schema: pa.Schema, news: _Touched) -> Iterator[pa.Table]:
    """The rolling slice: `rows` records of the list from where the last slice ended
    (going on at the top when the list ends, so a slice as long as the list re-reads all
    of it), written when they differ from the warehouse.

    It catches changes nothing signals (a person identified or given properties with no
    event). Its position moves with `checkpoint.advance` (with rows written, or hourly), so
    a quiet run re-reads the same slice and writes nothing.
    """
    limit = min(MAX_PAGE_SIZE, rows)
    budget = -(-rows // limit)  # pages this slice reads at most
    path = f"{project.path}/{kind}"
    start = st.get("recheck_cursor")
    listed: Records = []
    try:
        after, budget = _read_slice(client, path, limit, start, budget, listed)
    except ApiError as exc:
        if exc.status != 400 or start is None:
            raise
        # the kept cursor no longer holds (expired, or the settings changed): start over
        start = None
        after, budget = _read_slice(client, path, limit, None, budget, listed)
    if after is None and start is not None and budget:  # the list ended: go on at its top
        after, _ = _read_slice(client, path, limit, None, budget, listed)
    now = client.server_time()
    changed = None
    if listed:
        table = _table(listed, project.id, schema)  # a stretch of the list by `created_at`
        lo, hi = pc.min_max(table["created_at"]).values()
        changed = _loaded(kind, schema, project,
                          f"created_at BETWEEN {sql_timestamp(lo.as_py())} AND "
                          f"{sql_timestamp(hi.as_py())}").changed(table)
    if changed is not None:
        yield changed
    wrote = changed is not None or bool(news.persons) or bool(news.sessions)
    if checkpoint.advance(st, "recheck_at", format_ms(now), wrote):
        st["recheck_cursor"] = after


def _read_slice(client: ApiClient, path: str, limit: int, start: Optional[str], budget: int,
                into: Records) -> Tuple[Optional[str], int]:
    """Read up to `budget` pages of the list at `path` from cursor `start` into `into`.

    Returns the cursor of the page after the last one read (None once the list ended) and
    the pages of the budget left.
    """
    paginator = NextCursorPaginator(client, path, {"limit": limit}, start)
    for page in paginator.pages():
        into.extend(page)
        budget -= 1
        if budget == 0:
            break
    return paginator.next_cursor, budget


def _loaded(kind: str, schema: pa.Schema, project: _Project, where: str) -> Known:
    """Rows of `kind` of the project matching `where` (SQL) in the warehouse."""
    return Known.read(kind, schema.names, f"project_id = {sql_literal(project.id)} AND {where}")


def _definitions(client: ApiClient, project: _Project, kind: str, key: str,
                 schema: pa.Schema, params: Optional[Dict[str, Any]] = None
                 ) -> Iterator[pa.Table]:
    """The whole (small) list; emits rows whose content changed, and marks vanished ones.

    A row's content is a hash of its record, kept in `content_hash`, so a change in any of
    the API's fields is seen, listed as a column or not.
    """
    listed: Records = []
    for page in NextCursorPaginator(client, f"{project.path}/{kind}", params).pages():
        listed.extend(page)
    now = client.server_time()
    deletable = "deleted_at" in schema.names
    known = Known.read(kind, schema.names, f"project_id = {sql_literal(project.id)}", key,
                       compare=["content_hash"] + (["deleted_at"] if deletable else []))
    rows = [dict(r, content_hash=hashlib.sha1(orjson.dumps(
        r, option=orjson.OPT_SORT_KEYS)).hexdigest()) for r in listed]
    tables = [known.changed(_table(rows, project.id, schema))]
    gone = known.missing(r[key] for r in listed) if deletable else None
    if gone is not None:
        gone = gone.filter(pc.is_null(gone["deleted_at"]))
        tables.append(mark_deleted(gone.select(schema.names).cast(schema), now)
                      if gone.num_rows else None)
    found = [t for t in tables if t is not None]
    if found:
        yield pa.concat_tables(found)


def _table(records: Records, project_id: str, schema: pa.Schema) -> pa.Table:
    """API records as an Arrow table of `schema`: times parsed, nested values as JSON text."""
    columns: Dict[str, Any] = {}
    for f in schema:
        if f.name == "project_id":
            columns[f.name] = [project_id] * len(records)
        elif pa.types.is_timestamp(f.type):
            columns[f.name] = arrow_times([r.get(f.name) for r in records])
        elif f.type == pa.string():
            columns[f.name] = [_text(r.get(f.name)) for r in records]
        else:
            columns[f.name] = [r.get(f.name) for r in records]
    return pa.table(columns, schema=schema)


def _text(value: Any) -> Optional[str]:
    """A value for a text column: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()



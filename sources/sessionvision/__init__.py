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

Resources run in declaration order (`[extract] next_item_mode = "fifo"`), so `sessions`
and `persons` see what `events` loaded in the same run.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

import dlt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.sources import DltResource

from sources import checkpoint, fanout, partitions
from sources.batches import Batches
from sources.byid import fetch_each
from sources.hints import MERGE
from sources.http import ApiClient, ApiError, HttpConfig, SyncError, segment
from sources.loaded import loaded_ids, read_loaded, sql_literal, sql_timestamp
from sources.sessionvision.client import SOURCE, NextCursorPaginator, make_client
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
from sources.timeutil import arrow_times, format_ms, parse_ts

Records = List[Dict[str, Any]]


@dataclass
class _Project:
    """One project within one run: its standing and what `events` loaded for it."""

    id: str
    failed: bool = False
    sessions: Optional[Set[str]] = None  # session ids of newly loaded events
    persons: Optional[Set[str]] = None  # distinct ids of newly loaded events
    oldest_new: Optional[datetime] = None  # earliest timestamp among them
    windowed: bool = False  # a backfill window: only what its events touch is refreshed
    until: Optional[datetime] = None  # a backfill window's end: no session it touches starts later
    since: Optional[datetime] = None  # `checked_at` before this run: earlier runs read after it

    @property
    def path(self) -> str:
        return f"/api/v1/projects/{segment(self.id)}"

    @contextmanager
    def guard(self) -> Iterator[None]:
        """A project the token may not read (403) or that does not exist (404) fails alone."""
        try:
            yield
        except ApiError as exc:
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        """Fail this project alone when `exc` says it cannot be read; re-raise anything else."""
        if not isinstance(exc, ApiError) or exc.status not in (403, 404):
            raise exc
        self.failed = True
        partitions.report(f"{SOURCE} project {self.id}: {exc.message} (HTTP {exc.status})")


@dataclass
class _EventScan:
    """One project's events read in one run: `[lo, hi)`, and the ids already loaded there."""

    project: _Project
    lo: datetime
    hi: Optional[datetime]
    known: Set[str]
    started: Optional[datetime] = None  # server time of the first page, before every read

    def pages(self, client: ApiClient) -> Callable[[], Iterator[Records]]:
        """The page stream, started on a fanout thread (it notes its own `started`)."""
        params = {"date_from": format_ms(self.lo),
                  **({"date_to": format_ms(self.hi)} if self.hi else {})}

        def stream() -> Iterator[Records]:
            paginator = NextCursorPaginator(client, f"{self.project.path}/events", params)
            for page in paginator.pages():
                if self.started is None:
                    self.started = client.server_time()  # this thread's own response
                yield page
        return stream

    def take(self, page: Records) -> Optional[pa.Table]:
        """The page's events the warehouse does not hold, as Arrow; notes their sessions
        and persons on the project."""
        new = [e for e in page if e["id"] not in self.known] if self.known else page
        if not new:
            return None
        project = self.project
        assert project.sessions is not None and project.persons is not None
        table = _event_table(new, project.id)
        project.sessions.update(pc.unique(table["session_id"]).to_pylist())
        project.persons.update(pc.unique(table["distinct_id"]).to_pylist())
        oldest = pc.min(table["timestamp"]).as_py()
        if project.oldest_new is None or oldest < project.oldest_new:
            project.oldest_new = oldest
        return table


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
    projects = [_Project(str(pid)) for pid in project_ids]

    def each_project() -> Iterator[Tuple[_Project, Dict[str, Any]]]:
        """Projects still in good standing, each with this resource's state for it."""
        state = dlt.current.resource_state().setdefault("projects", {})
        for project in projects:
            if not project.failed:
                yield project, state.setdefault(project.id, {})

    def table(name: str, schema: pa.Schema, key: Any = "id") -> Any:
        return dlt.resource(name=name, primary_key=key, write_disposition=MERGE, columns=schema)

    @table("events", EVENT_SCHEMA)
    def events() -> Iterator[pa.Table]:
        """New events of every project; projects are paged at once (`sources.fanout`)."""
        scans = {project.id: (_plan_events(project, st, start, bounds), st)
                 for project, st in each_project()}
        streams = [(pid, scan.pages(client)) for pid, (scan, _) in scans.items()]
        batches = Batches()
        for message in fanout.interleave(streams, concurrency):
            scan, st = scans[message.key]
            if isinstance(message, fanout.Page):
                batch = batches.add(scan.take(message.items))
                if batch is not None:
                    yield batch
            elif message.error is not None:
                scan.project.fail(message.error)
            elif not bounds:
                checkpoint.advance(st, "checked_at", format_ms(scan.started or
                                                               client.server_time()),
                                   wrote=bool(scan.project.sessions))
        last = batches.flush()
        if last is not None:
            yield last

    @table("sessions", SESSION_SCHEMA)
    def sessions() -> Iterator[pa.Table]:
        for project, st in each_project():
            with project.guard():
                due, known = project.sessions, {}
                if due is not None and st.get("loaded"):
                    known = {i: r for i, r in _maybe_open(project).items() if i not in due}
                    due = due | known.keys()
                yield from _changed_by_event(
                    client, project, st, "sessions", due, concurrency,
                    SESSION_SCHEMA, {"date_from": format_ms(start)}, known)

    @table("persons", PERSON_SCHEMA)
    def persons() -> Iterator[pa.Table]:
        for project, st in each_project():
            with project.guard():
                rechecking = st.get("loaded") and not project.windowed
                yield from _changed_by_event(
                    client, project, st, "persons", project.persons, concurrency,
                    PERSON_SCHEMA, {})
                if rechecking and project.persons is not None:
                    yield from _recheck(client, project, st, "persons", recheck_rows,
                                        PERSON_SCHEMA)
                elif not project.windowed:  # the first run read the whole list just now
                    st.setdefault("recheck_at", format_ms(client.server_time()))

    @table("event_definitions", EVENT_DEFINITION_SCHEMA, ("project_id", "name"))
    def event_definitions() -> Iterator[pa.Table]:
        for project, _ in each_project():
            with project.guard():
                yield from _definitions(client, project, "event_definitions", "name",
                                        EVENT_DEFINITION_SCHEMA)

    @table("property_definitions", PROPERTY_DEFINITION_SCHEMA, ("project_id", "key"))
    def property_definitions() -> Iterator[pa.Table]:
        for project, _ in each_project():
            with project.guard():
                yield from _definitions(client, project, "property_definitions", "key",
                                        PROPERTY_DEFINITION_SCHEMA)

    @table("action_definitions", ACTION_DEFINITION_SCHEMA, ("project_id", "id"))
    def action_definitions() -> Iterator[pa.Table]:
        for project, _ in each_project():
            with project.guard():
                yield from _definitions(client, project, "action_definitions", "id",
                                        ACTION_DEFINITION_SCHEMA, {"include_archived": "true"})

    return [events, sessions, persons, event_definitions, property_definitions,
            action_definitions]


def _plan_events(project: _Project, st: Dict[str, Any], start: datetime,
                 bounds: Optional[List[datetime]]) -> _EventScan:
    """Which events of a project this run reads: a backfill window, or everything since the
    previous run's start less the 48-hour visibility delay (since `start_date` at first)."""
    project.sessions, project.persons = set(), set()
    if bounds:
        project.windowed = True
        lo, hi = bounds[0], bounds[1]
        project.until = hi
    else:
        since, lo, hi = st.get("checked_at"), start, None
        if since is not None:
            project.since = parse_ts(since)
            lookback = timedelta(hours=MAX_DELAY_HOURS, seconds=CLOCK_MARGIN_SECONDS)
            lo = max(start, project.since - lookback)
    until = f" AND timestamp < {sql_timestamp(hi)}" if hi else ""
    known = loaded_ids("events", f"project_id = {sql_literal(project.id)} AND "
                                 f"timestamp >= {sql_timestamp(lo)}{until}")
    return _EventScan(project, lo, hi, known)


def _event_table(events: Records, project_id: str) -> pa.Table:
    """Events as Arrow: promoted `$` properties as columns, all properties as JSON text."""
    columns: Dict[str, Any] = {
        "id": [e["id"] for e in events],
        "project_id": [project_id] * len(events),
        "event": [e["event"] for e in events],
        "distinct_id": [e["distinct_id"] for e in events],
        "session_id": [e["session_id"] for e in events],
        "timestamp": arrow_times([e["timestamp"] for e in events]),
    }
    properties = [e.get("properties") or {} for e in events]
    for key, column in PROMOTED.items():
        columns[column] = _text_column([p.get(key) for p in properties])
    columns["properties"] = pa.array([orjson.dumps(p) for p in properties],
                                     pa.binary()).cast(pa.string())
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
                      list_params: Dict[str, Any], known: Optional[Dict[str, Any]] = None
                      ) -> Iterator[pa.Table]:
    """Sessions or persons touched by this run's new events (all of them on a first run),
    and any other `due` ones; a record due with no new event (its loaded row in `known`,
    by id) is written only when it differs from that row.

    Few: read each by id. Many: page the list and keep the due ones (sessions from a day
    before the earliest new event; a session that started earlier is then read by id). A
    record listed twice (moved during paging) is kept twice; the runner keeps the later.
    """
    key = "id" if kind == "sessions" else "distinct_id"
    first_run = not st.get("loaded") and not project.windowed
    if not first_run and due is None:  # `events` not selected: nothing is known to be due
        return
    if first_run or len(due or ()) > BY_ID_MAX:
        params = dict(list_params)
        # sessions due for an event started a day before it at most; those maybe open
        # when last read ended after `since` less the timeout
        times = [t for t in (project.oldest_new, project.since) if t is not None]
        if not first_run and kind == "sessions" and times:
            params["date_from"] = format_ms(min(times) - timedelta(
                hours=SESSION_SPAN_HOURS, minutes=SESSION_TIMEOUT_MINUTES))
            if project.until is not None:  # not the sessions of every later window too
                params["date_to"] = format_ms(project.until)
        wanted, listed = set(due or ()), set[str]()
        for page in NextCursorPaginator(client, f"{project.path}/{kind}", params).pages():
            rows = [r for r in page if first_run or r[key] in wanted]
            listed.update(r[key] for r in rows)
            changed = _changed(_table(rows, project.id, schema), known) if rows else None
            if changed is not None:
                yield changed
        due = set() if first_run else wanted - listed  # started before the listed window
    paths = [f"{project.path}/{kind}/{segment(i)}" for i in sorted(due or ())]
    rows = [body for _, body in fetch_each(client, paths, concurrency) if body is not None]
    changed = _changed(_table(rows, project.id, schema), known) if rows else None
    if changed is not None:
        yield changed
    st["loaded"] = True


def _maybe_open(project: _Project) -> Dict[str, Any]:
    """Loaded sessions (rows by id) that may have been open (inside their inactivity timeout) when a
    run last read them: they can still change with no new event, when the timeout passes.

    Every earlier read happened after `project.since` (a response before them), so a
    session read open then ends after `since` less the timeout; once a run reads it after
    its timeout has passed, its end is older than that run's `since` and it drops out.
    """
    if project.since is None or project.windowed:
        return {}
    horizon = project.since - timedelta(minutes=SESSION_TIMEOUT_MINUTES,
                                        seconds=CLOCK_MARGIN_SECONDS)
    return _loaded_rows("sessions", SESSION_SCHEMA, project,
                        f"end_time >= {sql_timestamp(horizon)}")


def _recheck(client: ApiClient, project: _Project, st: Dict[str, Any], kind: str,
             rows: int, schema: pa.Schema) -> Iterator[pa.Table]:
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
        changed = _changed(table, _loaded_rows(
            kind, schema, project, f"created_at BETWEEN {sql_timestamp(lo.as_py())} AND "
                                   f"{sql_timestamp(hi.as_py())}"))
    if changed is not None:
        yield changed
    wrote = changed is not None or bool(project.persons) or bool(project.sessions)
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


def _loaded_rows(kind: str, schema: pa.Schema, project: _Project,
                 where: str) -> Dict[str, Any]:
    """Rows of `kind` of the project matching `where` (SQL) in the warehouse, by id."""
    loaded = read_loaded(kind, schema.names, f"project_id = {sql_literal(project.id)} AND "
                                             f"{where}")
    return {r["id"]: r for r in loaded.to_pylist()} if loaded is not None else {}


def _changed(table: pa.Table, known: Optional[Dict[str, Any]]) -> Optional[pa.Table]:
    """`table` without the rows `known` (loaded rows by id) holds as they are; None if
    nothing is left."""
    if not known:
        return table
    keep = [known.get(r["id"]) != r for r in table.to_pylist()]
    if all(keep):
        return table
    return table.filter(pa.array(keep)) if any(keep) else None


def _definitions(client: ApiClient, project: _Project, kind: str, key: str,
                 schema: pa.Schema, params: Optional[Dict[str, Any]] = None
                 ) -> Iterator[pa.Table]:
    """The whole (small) list; emits rows whose content changed, and marks vanished ones."""
    listed: Records = []
    for page in NextCursorPaginator(client, f"{project.path}/{kind}", params).pages():
        listed.extend(page)
    now = client.server_time()
    loaded = read_loaded(kind, schema.names, f"project_id = {sql_literal(project.id)}")
    before = {r[key]: r for r in (loaded.to_pylist() if loaded is not None else [])}
    rows = []
    for record in listed:
        digest = hashlib.sha1(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
        old = before.get(record[key])
        if old is None or old["content_hash"] != digest or old.get("deleted_at") is not None:
            rows.append(dict(record, content_hash=digest))
    table = _table(rows, project.id, schema) if rows else None
    if "deleted_at" in schema.names:
        gone = [dict(r, deleted_at=now) for k, r in before.items()
                if r["deleted_at"] is None and k not in {rec[key] for rec in listed}]
        if gone:
            table = pa.concat_tables(
                ([table] if table is not None else []) + [pa.Table.from_pylist(gone, schema)])
    if table is not None:
        yield table


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



"""Tagbase source: verifications from the integration's log; their sessions and tags by id.

The platform has no list endpoint, so the verification log is the only record of what
happened. A run:

1. reads the log's new content (new files, new tails of grown files) and loads each
   verification once (the log may hold a line twice), with its `session_id` and `tag_id`;
   lines that are not verification documents go to `rejected_log_lines` with file and line;
2. fetches by id, on a few threads, each session and tag the new lines reference, plus the
   ones that could still have changed: sessions that were inside their 10-minute window when
   last read, tags not yet `configured`. Everything else is final and never read again;
3. records a 404 (another account's id, a deleted tag) as a row with `found = false`.

Log positions live in dlt state and are committed with the rows they produced, so a crash
re-reads the same lines, and merge on `id` keeps one row each. `verifications` hands what it
found (references, rejected lines) to the other resources (`sources.depends`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Dict, Iterator, List, Optional, Set

import dlt
import pyarrow as pa
from dlt.sources import DltResource

from sources.changes import Known
from sources.depends import Handoff
from sources.errors import SyncError
from sources.hints import MERGE
from sources.http import ApiClient, HttpConfig
from sources.loaded import loaded_ids, sql_timestamp
from sources.tagbase.client import SOURCE, fetch_by_id, make_client
from sources.tagbase.log import new_chunks, parse_verification
from sources.tagbase.settings import (
    REFERENCE_LOOKBACK_HOURS,
    REJECT_SCHEMA,
    SESSION_SCHEMA,
    SESSION_WINDOW_MINUTES,
    TAG_SCHEMA,
    VERIFICATION_SCHEMA,
)

log = logging.getLogger("sessionsync.tagbase")
_OPEN = f"found AND fetched_at < inserted_at + INTERVAL '{SESSION_WINDOW_MINUTES} minutes'"
_NOT_COMPARED = ("id", "fetched_at")  # a re-read row that differs only in these is not written
_COMPARED = [c for c in SESSION_SCHEMA.names if c not in _NOT_COMPARED]


@dataclass
class _Found:
    """What this run's log reading found, for the resources that follow it."""

    sessions: Set[str] = field(default_factory=set)
    tags: Set[str] = field(default_factory=set)
    oldest: Optional[datetime] = None
    rejects: List[Dict[str, Any]] = field(default_factory=list)


@dlt.source(name=SOURCE)
def tagbase_source(
    base_url: str = "https://platform.tagbase.io",
    api_key: str = dlt.secrets.value,
    verification_log_url: str = dlt.config.value,
    concurrency: int = 8,
    http: HttpConfig = dlt.config.value,
) -> List[DltResource]:
    """Verifications from the log at `verification_log_url`, with their sessions and tags.

    Args:
        base_url: scheme and host of the platform (paths are under `/api/v1`).
        api_key: the whole `key_<id>:<secret>` string (secret).
        verification_log_url: folder of the log, a local path or any fsspec URL.
        concurrency: by-id reads in flight at once.
        http: timeouts and retry policy.
    """
    if not verification_log_url:
        raise SyncError(f"{SOURCE}: setting verification_log_url is empty")
    client = make_client(base_url, api_key, http)
    found: Handoff[_Found] = Handoff(SOURCE, "verifications")

    @dlt.resource(primary_key="id", write_disposition=MERGE, columns=VERIFICATION_SCHEMA)
    def verifications() -> Iterator[pa.Table]:
        files: Dict[str, Dict[str, int]] = dlt.current.resource_state().setdefault("files", {})
        seen: Set[str] = set()
        run = _Found()
        for chunk in new_chunks(verification_log_url, files):
            if chunk.reset:
                log.warning("%s: log file %s shrank; read again from its start",
                            SOURCE, chunk.file)
            rows = []
            for index, line in enumerate(chunk.lines):
                number = chunk.first_line + index
                broken = chunk.broken.get(index)
                row, problem = (None, broken) if broken else parse_verification(line)
                if problem:
                    log.warning("%s: skipped log line %s:%d: %s",
                                SOURCE, chunk.file, number, problem)
                    run.rejects.append({"file": chunk.file, "line": number, "reason": problem})
                elif row and row["id"] not in seen:
                    seen.add(row["id"])
                    rows.append(row)
            _note_references(run, rows)
            if rows:
                yield pa.Table.from_pylist(rows, VERIFICATION_SCHEMA)
            files[chunk.file] = chunk.position()
        found.publish(run)

    @dlt.resource(primary_key=("file", "line"), write_disposition=MERGE, columns=REJECT_SCHEMA)
    def rejected_log_lines() -> Iterator[pa.Table]:
        run = found.get()
        if run is not None and run.rejects:
            now = datetime.now(UTC)
            yield pa.Table.from_pylist([dict(r, seen_at=now) for r in run.rejects],
                                       REJECT_SCHEMA)

    @dlt.resource(primary_key="id", write_disposition=MERGE, columns=SESSION_SCHEMA)
    def sessions() -> Iterator[pa.Table]:
        still_open = Known.read("sessions", SESSION_SCHEMA.names, _OPEN, compare=_COMPARED)
        due = set(still_open.keys())
        run = found.get() or _Found()
        if run.sessions:
            assert run.oldest is not None
            since = run.oldest - timedelta(hours=REFERENCE_LOOKBACK_HOURS)
            settled = loaded_ids("sessions",
                                 f"fetched_at >= {sql_timestamp(since)} AND NOT ({_OPEN})")
            due |= run.sessions - settled
        yield from _fetch(client, "sessions", due, concurrency, _session_row, SESSION_SCHEMA,
                          still_open)

    @dlt.resource(primary_key="id", write_disposition=MERGE, columns=TAG_SCHEMA)
    def tags() -> Iterator[pa.Table]:
        unconfigured = Known.read("tags", TAG_SCHEMA.names, "found AND status <> 'configured'",
                                  compare=[c for c in TAG_SCHEMA.names if c not in _NOT_COMPARED])
        due = set(unconfigured.keys())
        run = found.get() or _Found()
        if run.tags:
            due |= run.tags - loaded_ids("tags", "NOT found OR status = 'configured'")
        yield from _fetch(client, "tags", due, concurrency, _tag_row, TAG_SCHEMA, unconfigured)

    return [verifications, rejected_log_lines, sessions, tags]


def _note_references(run: _Found, rows: List[Dict[str, Any]]) -> None:
    for row in rows:
        run.sessions.add(row["session_id"])
        run.tags.add(row["tag_id"])
        if run.oldest is None or row["inserted_at"] < run.oldest:
            run.oldest = row["inserted_at"]


def _fetch(client: ApiClient, kind: str, ids: Set[str], concurrency: int, to_row: Any,
           schema: pa.Schema, loaded: Known, batch: int = 5000) -> Iterator[pa.Table]:
    """Read `ids` and yield their rows in batches, each stamped with the server's time.

    A re-read row equal to its `loaded` row (but for `fetched_at`) is left out, so a quiet
    run writes nothing, unless this read settles a session: then its new `fetched_at` is
    what records that.
    """
    rows: List[Dict[str, Any]] = []
    settles: List[bool] = []
    fetched_at: Optional[datetime] = None
    settle = timedelta(minutes=SESSION_WINDOW_MINUTES)

    def changed() -> Optional[pa.Table]:
        table = loaded.changed(pa.Table.from_pylist(rows, schema), pa.array(settles))
        rows.clear()
        settles.clear()
        return table

    for rid, data in fetch_by_id(client, kind, sorted(ids), concurrency):
        if fetched_at is None:  # the first read is done alone, before the others start
            fetched_at = client.server_time()
        row = dict(to_row(rid, data), id=rid, found=data is not None, fetched_at=fetched_at)
        rows.append(row)
        settles.append(kind == "sessions" and row["found"]
                       and fetched_at >= row["inserted_at"] + settle)
        if len(rows) >= batch:
            table = changed()
            if table is not None:
                yield table
    table = changed() if rows else None
    if table is not None:
        yield table


def _session_row(rid: str, data: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    if data is None:
        return {}
    return {"tag_id": data["relationships"]["tag"]["data"]["id"],
            "inserted_at": _time(data["attributes"]["inserted_at"])}


def _tag_row(rid: str, data: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    if data is None:
        return {}
    attrs = data["attributes"]
    return {"protocol": attrs["protocol"], "url": attrs["url"], "status": attrs["status"],
            "configured_at": _time(attrs.get("configured_at")),
            "inserted_at": _time(attrs["inserted_at"])}


def _time(value: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(value) if value else None

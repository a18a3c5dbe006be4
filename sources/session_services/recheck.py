"""The rolling re-read: changes no event and no list order signals, caught within a bound.

Scans are not limited to an event's entry window (check-out scans come hours later) and
disputes are not limited to the 60-day refund window, yet nothing in the API points at them.
So every run re-reads a slice of what the regular reads leave out, and the slices together
re-read everything once per `recheck_hours` of server time, at a cost per run proportional to
the time since the last run (constant for a fixed schedule):

- **Orders older than the window** are swept in page order from a stored cursor. A sweep
  (a "cycle") starts at the first page; after a share `elapsed / recheck_hours` of the cycle it
  has read up to the same share of the creation-time span between the first order and the
  window, so it reaches the window (and starts over) `recheck_hours` after it began.
- **Tickets and admissions of events** not read whole this run: each event has a fixed slot
  in the cycle (a hash of its id), and a run re-reads the events whose slot time fell between
  the previous run's start (the watermark) and this run's. No state is needed.

A re-read emits only what changed since the previous re-read of the same records could have
read them, and only changes the regular reads cannot see, so one that finds nothing writes
nothing.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from sources.checkpoint import MAX_AGE
from sources.session_services.settings import MUTABLE_DAYS
from sources.timeutil import format_ms, parse_ts

Records = List[Dict[str, Any]]
Pages = Callable[[Optional[List[Any]]], Iterator[Tuple[Records, Optional[str]]]]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _share(hours: float, since: datetime, now: datetime) -> float:
    """How much of a cycle of `hours` lies between `since` and `now` (1 = all of it)."""
    if hours <= 0:
        return 1.0
    return min(1.0, max(0.0, (now - since) / timedelta(hours=hours)))


def new_cycle(now: str, prev: Optional[str], origin: Optional[str]) -> Dict[str, Any]:
    """Sweep state at the start of a cycle: from the first page; `prev` is when the previous
    cycle began (every order it re-read was read after then), `origin` the first order's
    creation time (None until the sweep reads the first page)."""
    return {"cycle": now, "prev": prev, "origin": origin, "at": None, "pos": None}


def sweep_orders(pages: Pages, rc: Dict[str, Any], window: List[Any], now: str, hours: float,
                 keep: Callable[[Dict[str, Any]], bool]
                 ) -> Iterator[Tuple[Records, Records, Dict[str, Any]]]:
    """Re-read the orders pages due this run, before the window's first page.

    Args:
        pages: orders pages from a `[cursor, first createdAt of its page]` entry (None: from
            the first page), starting over from the first page when that page changed.
        rc: the sweep state (`new_cycle`), updated as pages are read: `at` is
            `[cursor, first createdAt]` of the last page read, `pos` its last `createdAt`.
        window: the ladder entry the regular scan starts at; the sweep ends there.
        now: this run's start (less the margin), on the server's clock.
        hours: the cycle length; 0 re-reads every older page now.
        keep: orders the caller loads at all (e.g. created after `start_date`).

    Yields:
        `(page, rows, state)`: each page read, the orders of it to emit (changed since the
        previous cycle began, and changed after their refund window, which the regular scan
        does not read), and the sweep state to store once the rows are loaded.
    """
    end = window[1]
    origin = rc.get("origin")
    due = _share(hours, parse_ts(rc["cycle"]), parse_ts(now))
    if origin is not None and rc.get("pos") is not None:
        span = parse_ts(end) - parse_ts(origin)
        if parse_ts(rc["pos"]) >= parse_ts(origin) + span * due:
            return  # the sweep is ahead of its schedule
    floor = rc.get("prev") or ""
    state = dict(rc)
    for records, cursor in pages(rc.get("at")):
        if not records:
            break
        if state.get("origin") is None:
            state["origin"] = records[0]["createdAt"]
        rows = [r for r in records if keep(r) and r["updatedAt"] >= floor and _late(r)]
        last = records[-1]["createdAt"]
        state = dict(state, at=[cursor, records[0]["createdAt"]], pos=last)
        span = parse_ts(end) - parse_ts(state["origin"])
        if last >= end:
            state = new_cycle(now, rc["cycle"], state["origin"])
            yield records, rows, state
            return
        yield records, rows, state
        if parse_ts(last) >= parse_ts(state["origin"]) + span * due:
            return
    # the list ended before the window's page (it cannot, unless the answer was stale)
    yield [], [], new_cycle(now, rc["cycle"], state.get("origin"))


def store(st: Dict[str, Any], sweep: Dict[str, Any], now: str, wrote: bool) -> None:
    """Keep the sweep state in `st["recheck"]` the way `checkpoint.advance` moves a
    checkpoint: when the run wrote rows anyway, or there is none, or it is `MAX_AGE` old. A
    quiet run changes no state (so writes no load package); the next run re-reads from the
    stored position, at most `MAX_AGE` worth of sweep more."""
    stored = st.get("recheck")
    if stored is not None and {k: v for k, v in stored.items() if k != "saved"} == {
            k: v for k, v in sweep.items() if k != "saved"}:
        return
    if wrote or stored is None or parse_ts(now) - parse_ts(stored["saved"]) >= MAX_AGE:
        st["recheck"] = dict(sweep, saved=now)


def _late(order: Dict[str, Any]) -> bool:
    """Changed after its refund window: the regular scan reads each order while it is in its
    window, so only such changes (a late dispute) are left for the sweep."""
    return parse_ts(order["updatedAt"]) >= (parse_ts(order["createdAt"])
                                            + timedelta(days=MUTABLE_DAYS))


def _slot(event_id: str) -> float:
    """An event's fixed place in the cycle, in [0, 1)."""
    return int(hashlib.sha256(event_id.encode()).hexdigest()[:8], 16) / 16 ** 8


def due_events(event_ids: Iterable[str], since: str, started: str, hours: float) -> Set[str]:
    """The events whose slot time (slot + k cycles after the epoch) is in (since, started]."""
    ids = list(event_ids)
    span = parse_ts(started) - parse_ts(since)
    if hours <= 0 or span >= timedelta(hours=hours):
        return set(ids)
    cycle = timedelta(hours=hours)
    due = set()
    for eid in ids:
        offset = cycle * _slot(eid)
        k = (parse_ts(started) - _EPOCH - offset) // cycle
        if _EPOCH + offset + cycle * k > parse_ts(since):
            due.add(eid)
    return due


def floor(since: str, hours: float) -> str:
    """What a re-read of an event emits from: the previous re-read of it began after then."""
    return format_ms(parse_ts(since) - timedelta(hours=max(0.0, hours)))

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
- **Tickets and admissions of events** not read whole this run are swept the same way, in
  ascending event id: after a share x of the cycle, the first x of the tenant's events.

A cycle's re-read emits what changed since the previous cycle began (every record it covers
was read after then), and only changes the regular reads cannot see, so one that finds
nothing changed writes nothing. `recheck_hours` may change between runs: the emission floor
comes from the cycles actually run, never from the setting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from sources.checkpoint import MAX_AGE
from sources.session_services.settings import MUTABLE_DAYS
from sources.timeutil import parse_ts

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
    stored = None if hours <= 0 else rc.get("at")
    whole: Optional[bool] = None  # whether this run read the cycle from the first page
    for records, cursor in pages(stored):
        if not records:
            break
        # the stored page again: its rows were loaded with the state that names it
        again = whole is None and [cursor, records[0]["createdAt"]] == stored
        if whole is None:  # (a skipped page was not re-checked: the cycle is not whole)
            whole = cursor is None and not again
        if state.get("origin") is None:
            state["origin"] = records[0]["createdAt"]
        rows = [] if again else [r for r in records
                                 if keep(r) and r["updatedAt"] >= floor and _late(r)]
        last = records[-1]["createdAt"]
        state = dict(state, at=[cursor, records[0]["createdAt"]], pos=last)
        span = parse_ts(end) - parse_ts(state["origin"])
        if last >= end:
            state = new_cycle(now, now if whole else rc["cycle"], state["origin"])
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


def sweep_events(event_ids: Iterable[str], rc: Optional[Dict[str, Any]], now: str,
                 hours: float) -> Tuple[List[str], Optional[str], Dict[str, Any]]:
    """The events due for a re-read this run, in ascending id (creation) order.

    Args:
        event_ids: every event of the tenant, live and soft-deleted.
        rc: the sweep state (`new_cycle`; `pos` is the last event id re-read this cycle), or
            None when there is none yet (it starts now; the previous read time is unknown).
        now: this run's start (less the margin), on the server's clock.
        hours: the cycle length; 0 re-reads every event now.

    Returns:
        `(due, floor, state)`: the events to re-read, the `updatedAt` the re-read emits from
        (the previous cycle's start, when every event was last read at the latest; None:
        unknown), and the sweep state to store once the rows are loaded.
    """
    ids = sorted(event_ids)
    rc = rc or new_cycle(now, None, None)
    pos = rc.get("pos")
    done = 0 if pos is None or hours <= 0 else sum(1 for e in ids if e <= pos)
    share = _share(hours, parse_ts(rc["cycle"]), parse_ts(now))
    upto = len(ids) if share >= 1 else int(share * len(ids))
    due = ids[done:upto]
    if upto >= len(ids):  # the cycle is complete; all read this run: they are fresh as of now
        state = new_cycle(now, now if done == 0 else rc["cycle"], None)
    else:
        state = dict(rc, pos=due[-1]) if due else dict(rc)
    return due, rc.get("prev"), state

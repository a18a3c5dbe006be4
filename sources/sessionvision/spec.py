"""The spec of the `sessionvision` source (see `sources/spec.py`).

sessionvision: product analytics, per project; a project the token may not read fails alone.
"""

from sources.spec import Freshness, SourceSpec

SPEC = SourceSpec(
    name="sessionvision",
    factory="sources.sessionvision:sessionvision_source",
    resources=("events", "sessions", "persons", "event_definitions", "property_definitions",
               "action_definitions"),
    high_water={"events": "timestamp", "sessions": "end_time"},
    backfill=("events", "sessions", "persons"),
    new_only=("events",),
    needs={"sessions": "events", "persons": "events"},
    partition="project",
    history="sources.sessionvision:history",
    reread=("persons",),
    freshness=(
        Freshness(
            table="`events`",
            change="new event (visible up to 48 h after its `timestamp`)",
            bound="the next run after it becomes visible",
            cost="`ceil(E48 / 1000)` pages (+ up to an hour more of lookback)",
        ),
        Freshness(
            table="`sessions`",
            change="new or extended by an event (also a late one)",
            bound="the run that loads that event",
            cost="1 request per session by id, or the list from a day before the oldest new "
                 "event when over 500",
        ),
        Freshness(
            table="`sessions`",
            change="finalised by its inactivity timeout (no event)",
            bound="the first run after the timeout has passed",
            cost="1 request per session that ended after `checked_at` less 31 min (~45 min of "
                 "sessions at a 15-minute schedule, up to ~1.5 h when runs are quiet)",
        ),
        Freshness(
            table="`persons`",
            change="seen (`last_seen`), `$identify` or `$set` by an event",
            bound="the run that loads that event",
            cost="as for sessions",
        ),
        Freshness(
            table="`persons`",
            change="identified or given properties with no event",
            bound="within `ceil(P / recheck_rows) + 1` slice moves; the slice moves every run "
                  "that writes rows for the project and at least hourly, so within that many "
                  "runs if they write, that many hours if they are quiet (default 5,000: P ≤ "
                  "5,000 is within two)",
            cost="`ceil(min(P, recheck_rows) / 1000)` pages",
        ),
        Freshness(
            table="`event_definitions`, `property_definitions`, `action_definitions`",
            change="any change, archive, delete (`deleted_at`)",
            bound="the next run",
            cost="1 page each per 1,000 rows",
        ),
    ),
)

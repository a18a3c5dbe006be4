"""The spec of the `session_services` source (see `sources/spec.py`).

Session Services: ticketing, per tenant (one token each); a tenant whose token is refused
fails alone.
"""

from sources.spec import Freshness, SourceSpec

SPEC = SourceSpec(
    name="session_services",
    factory="sources.session_services:session_services_source",
    resources=("orders", "events", "venues", "admissions", "tickets"),
    high_water={"orders": "created_at", "tickets": "updated_at"},
    backfill=(),
    partition="tenant",
    first_append=True,
    freshness=(
        Freshness(
            table="`orders` (+ `orders__items`)",
            change="new order; status change (PENDING, PROCESSING, SUCCESSFUL, ABANDONED, "
                   "re-reserved); refund or dispute within 60 days of creation",
            bound="next run",
            cost="the window scan: `ceil(orders of the last ~60 days / 100) + 1`",
        ),
        Freshness(
            table="`orders`",
            change="changed while the run that reads it is scanning (after its page was read)",
            bound="the run after",
            cost="`1` (the clock read)",
        ),
        Freshness(
            table="`orders`",
            change="dispute or any change more than 60 days after creation",
            bound="within `2·(H + Δt + 1 h)`: a sweep ends at the first run `H` after it began "
                  "(state saved at least hourly), and a change just behind the sweep waits for "
                  "the next one",
            cost="the sweep: `older pages · Δt / H`, plus `1` page (the stored page is read "
                 "again) whenever it moves",
        ),
        Freshness(
            table="`events`",
            change="new, edited, status change, soft-deleted (`deleted_at`)",
            bound="next run",
            cost="both lists whole: `2 · ceil(events / 100)`",
        ),
        Freshness(
            table="`events`",
            change="soft-deleted between the reads of the live and the deleted list",
            bound="the same run, one row with `deleted_at`",
            cost="none",
        ),
        Freshness(
            table="`venues`",
            change="new, edited",
            bound="next run",
            cost="`ceil(venues / 100)`",
        ),
        Freshness(
            table="`admissions`",
            change="new; edited, of an event on sale or changed since the last run",
            bound="next run",
            cost="`1` per event on sale or changed",
        ),
        Freshness(
            table="`admissions`",
            change="edited, of an event neither on sale nor changed",
            bound="within `2·(H + Δt + 1 h)`",
            cost="`events · Δt / H`",
        ),
        Freshness(
            table="`tickets`",
            change="created (order succeeded), cancelled (refund)",
            bound="next run",
            cost="`1` per changed order, or `ceil(tickets / 100)` for an event with more than 10",
        ),
        Freshness(
            table="`tickets`",
            change="scanned during the entry window or up to 12 h after it",
            bound="next run",
            cost="`ceil(tickets / 100)` per such event",
        ),
        Freshness(
            table="`tickets`",
            change="scanned at any other time (early, or more than 12 h late)",
            bound="within `2·(H + Δt + 1 h)`",
            cost="`events · Δt / H` reads of `ceil(tickets / 100)`",
        ),
    ),
)

"""The spec of the `mobilenext` source (see `sources/spec.py`).

Mobile Next: organizations and their device sessions; an organization the key may not read
fails alone.
"""

from sources.spec import Freshness, SourceSpec

SPEC = SourceSpec(
    name="mobilenext",
    factory="sources.mobilenext:mobilenext_source",
    resources=("organizations", "sessions"),
    high_water={"sessions": "created_at"},
    backfill=("sessions",),
    partition="organization",
    freshness=(
        Freshness(
            table="`organizations`",
            change="new organization, renamed, role changed",
            bound="next run (≤ `I`)",
            cost="one request",
        ),
        Freshness(
            table="`sessions`",
            change="created",
            bound="next run (≤ `I`), even if created while the previous run was paging",
            cost="the incremental window: about `S × (1 day + I) / 500` list requests per "
                 "organization",
        ),
        Freshness(
            table="`sessions`",
            change="released (`releasedAt` set)",
            bound="next run (≤ `I`): unreleased sessions keep the window open back to them",
            cost="included above",
        ),
        Freshness(
            table="`sessions`",
            change="deleted, created in the incremental window",
            bound="next run (≤ `I`), `deleted_at` set",
            cost="included above",
        ),
        Freshness(
            table="`sessions`",
            change="deleted, older",
            bound="next reconcile scan: ≤ `reconcile_every_hours` (24 h) + `I` after the "
                  "deletion",
            cost="one full scan back to `start_date` (`S × days / 500` requests per "
                 "organization) once per `reconcile_every_hours`, none between",
        ),
        Freshness(
            table="`sessions`",
            change="organization newly selected or visible",
            bound="next run, a full scan",
            cost="one full scan, once",
        ),
    ),
)

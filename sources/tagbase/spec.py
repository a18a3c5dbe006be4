"""The spec of the `tagbase` source (see `sources/spec.py`).

Tagbase: the integration's verification log, sessions and tags read by id. One account, no
partitions: a refused key fails the whole run.
"""

from sources.spec import Freshness, SourceSpec

SPEC = SourceSpec(
    name="tagbase",
    factory="sources.tagbase:tagbase_source",
    resources=("verifications", "rejected_log_lines", "sessions", "tags"),
    high_water={"verifications": "inserted_at"},
    backfill=(),
    partition=None,
    freshness=(
        Freshness(
            table="`verifications`",
            change="new verification (a line the integration wrote)",
            bound="next run after the line is complete in the log (≤ `I` after the write)",
            cost="reads only the bytes past each file's position (plus the one gzip member "
                 "holding an incomplete line, decoded again)",
        ),
        Freshness(
            table="`verifications`",
            change="line in a torn gzip member, written again by the restarted writer",
            bound="next run after the rewrite",
            cost="as above",
        ),
        Freshness(
            table="`rejected_log_lines`",
            change="malformed line; torn member followed by a later one",
            bound="with the lines around it",
            cost="none extra",
        ),
        Freshness(
            table="`sessions`",
            change="referenced by a new line",
            bound="same run as the line",
            cost="one `GET` per new session",
        ),
        Freshness(
            table="`sessions`",
            change="inside its 10-minute window when read",
            bound="re-read each run until a read after the window closes (≤ `I` + 10 min)",
            cost="one `GET` per open session",
        ),
        Freshness(
            table="`sessions`",
            change="tag deleted after the session was read as final",
            bound="never (the contract allows keeping the last reading)",
            cost="none",
        ),
        Freshness(
            table="`tags`",
            change="referenced by a new line",
            bound="same run as the line",
            cost="one `GET` per new tag",
        ),
        Freshness(
            table="`tags`",
            change="configured",
            bound="next run (≤ `I`)",
            cost="one `GET` per tag not yet `configured`, every run",
        ),
        Freshness(
            table="`tags`",
            change="deleted before configured",
            bound="next run: `found = false`",
            cost="as above",
        ),
        Freshness(
            table="`tags`",
            change="deleted after configured",
            bound="never (kept as last read)",
            cost="none",
        ),
    ),
)

"""Constants of the Tagbase API and its verification log (fixed by the platform)."""

import pyarrow as pa

SESSION_WINDOW_MINUTES = 10  # a session accepts new verifications for 10 minutes
VERIFICATION_STATUSES = frozenset({"pending", "valid", "invalid"})
LOG_SUFFIXES = (".jsonl", ".jsonl.gz")  # plain or gzip JSON Lines
# New log lines reference sessions opened at most this long before them (the session window,
# plus slack for an integration that writes its log late).
REFERENCE_LOOKBACK_HOURS = 24

_TS = pa.timestamp("us", tz="UTC")  # the API's microseconds, kept exactly

# Tables as loaded; dlt takes column types and nullability from these schemas.
VERIFICATION_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    ("status", pa.string()),
    ("inserted_at", _TS),
    ("session_id", pa.string()),
    ("tag_id", pa.string()),
])
SESSION_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    ("tag_id", pa.string()),
    ("inserted_at", _TS),
    pa.field("found", pa.bool_(), nullable=False),  # false: the key got 404 for this id
    pa.field("fetched_at", _TS, nullable=False),  # the server's time when it was read
])
TAG_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    ("protocol", pa.string()),
    ("url", pa.string()),
    ("status", pa.string()),
    ("configured_at", _TS),
    ("inserted_at", _TS),
    pa.field("found", pa.bool_(), nullable=False),
    pa.field("fetched_at", _TS, nullable=False),
])
REJECT_SCHEMA = pa.schema([
    pa.field("file", pa.string(), nullable=False),
    pa.field("line", pa.int64(), nullable=False),
    ("reason", pa.string()),
    ("seen_at", _TS),
])

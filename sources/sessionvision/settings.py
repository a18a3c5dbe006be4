"""Constants of the sessionvision API and the tables the source writes."""

import pyarrow as pa

MAX_PAGE_SIZE = 1000  # the API answers 400 above this
MAX_DELAY_HOURS = 48  # an event becomes visible at most 48 hours after its timestamp
CLOCK_MARGIN_SECONDS = 60  # slack on the server-time watermark (its Date has whole seconds)
SESSION_SPAN_HOURS = 24  # a session started at most this long before one of its events
BY_ID_MAX = 500  # more changed sessions/persons than this: page the list instead
SESSION_TIMEOUT_MINUTES = 30  # a session can change until this long after its last event
RECHECK_ROWS = 5000  # default persons per project the rolling slice re-reads each run

# Well-known event properties BI needs, promoted to real columns (name in the API -> column).
PROMOTED = {"$current_url": "current_url", "$browser": "browser",
            "$device_type": "device_type", "$country": "country", "$referrer": "referrer"}

_TS = pa.timestamp("us", tz="UTC")
_JSON = pa.string()  # JSON text: query with DuckDB's json functions, e.g. properties->>'plan'

EVENT_SCHEMA = pa.schema(
    [pa.field("id", pa.string(), nullable=False), pa.field("project_id", pa.string(), False),
     ("event", pa.string()), ("distinct_id", pa.string()), ("session_id", pa.string()),
     ("timestamp", _TS)]
    + [(column, pa.string()) for column in PROMOTED.values()]
    + [("properties", _JSON)])
SESSION_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False), pa.field("project_id", pa.string(), False),
    ("distinct_id", pa.string()), ("start_time", _TS), ("end_time", _TS),
    ("duration", pa.int64()), ("pageview_count", pa.int64()), ("event_count", pa.int64()),
    ("is_bounce", pa.bool_()), ("entry_url", pa.string()), ("exit_url", pa.string()),
    ("country", pa.string()), ("device_type", pa.string()), ("browser", pa.string())])
PERSON_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False), pa.field("project_id", pa.string(), False),
    ("distinct_id", pa.string()), ("user_id", pa.string()), ("anonymous_id", pa.string()),
    ("properties", _JSON), ("country", pa.string()), ("device_type", pa.string()),
    ("browser", pa.string()), ("created_at", _TS), ("last_seen", _TS)])
EVENT_DEFINITION_SCHEMA = pa.schema([
    pa.field("project_id", pa.string(), False), pa.field("name", pa.string(), False),
    ("volume_30d", pa.int64()), ("last_seen", _TS), ("content_hash", pa.string())])
PROPERTY_DEFINITION_SCHEMA = pa.schema([
    pa.field("project_id", pa.string(), False), pa.field("key", pa.string(), False),
    ("type", pa.string()), ("example_values", _JSON), ("content_hash", pa.string())])
ACTION_DEFINITION_SCHEMA = pa.schema([
    pa.field("project_id", pa.string(), False), pa.field("id", pa.int64(), False),
    ("name", pa.string()), ("description", pa.string()), ("archived", pa.bool_()),
    ("steps", _JSON), ("created_at", _TS), ("updated_at", _TS), ("deleted_at", _TS),
    ("content_hash", pa.string())])

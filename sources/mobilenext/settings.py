"""Constants of the Mobile Next API (fixed by the API, not user configuration)."""

import pyarrow as pa

API_PREFIX = "/api/v1"
MAX_PAGE_SIZE = 500  # the API answers 400 above this
ORG_HEADER = "X-Organization-Id"
MAX_HOLD_HOURS = 24  # the platform releases every device within 24 hours of createdAt

_TS = pa.timestamp("us", tz="UTC")  # what DuckDB and Delta store; values stay ms-exact

# The sessions table: the API's session object with `device` flattened the way dlt names
# nested fields, plus `deleted_at` (set when the session disappears upstream). dlt takes the
# column types and nullability from this schema.
SESSION_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("organization", pa.string(), nullable=False),
    ("user", pa.string()),
    ("device__id", pa.string()),
    ("device__platform", pa.string()),
    ("device__type", pa.string()),
    ("device__name", pa.string()),
    ("device__os_version", pa.string()),
    pa.field("created_at", _TS, nullable=False),
    ("released_at", _TS),
    ("deleted_at", _TS),
])

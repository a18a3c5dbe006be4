"""Constants of the Session Services API (fixed by the API, not user configuration) and the
tables the source writes as Arrow."""

import pyarrow as pa

API_VERSION = "2025-09-22"  # sent on every request to pin behaviour
MAX_PAGE_SIZE = 100  # the API answers 422 above this
MUTABLE_DAYS = 60  # orders can be refunded or disputed for 60 days after creation
WATERMARK_MARGIN_SECONDS = 2  # the Date header has whole seconds; re-emit a little more
LADDER_MAX = 200  # stored order-page cursors per tenant (thinned beyond this)
ORDER_READS_PER_EVENT = 10  # more changed orders than this: read the event's tickets instead
SCAN_GRACE_HOURS = 12  # tickets of an event are read whole this long after its entry window

_TS = pa.timestamp("us", tz="UTC")  # what DuckDB and Delta store; values stay ms-exact

# Orders and tickets as loaded (`arrow.py` builds each page with these); dlt takes column
# types and nullability from them. Column names are the API's, snake_cased, nested objects
# flattened with `__` (the names dlt gave them when it normalized dicts).
ORDER_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    ("tenant_id", pa.string()), ("event_id", pa.string()), ("status", pa.string()),
    ("currency", pa.string()),
    ("total", pa.int64()), ("gross", pa.int64()), ("base", pa.int64()),
    ("booking", pa.int64()), ("shipping", pa.int64()), ("discount", pa.int64()),
    ("refunded", pa.int64()), ("gateway", pa.int64()), ("net", pa.int64()),
    ("customer__id", pa.string()), ("customer__name", pa.string()),
    ("customer__email", pa.string()),
    ("created_at", _TS), ("updated_at", _TS),
])
# `orders__items`: one row per line of an order, keyed by the order and the line's position
# in its `items` list (0-based). A load replaces all lines of each order it carries.
ITEM_SCHEMA = pa.schema([
    pa.field("order_id", pa.string(), nullable=False),
    pa.field("line", pa.int64(), nullable=False),
    ("tenant_id", pa.string()), ("admission_id", pa.string()), ("section_id", pa.string()),
    ("quantity", pa.int64()), ("price", pa.int64()),
])
TICKET_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    ("tenant_id", pa.string()), ("order_id", pa.string()), ("event_id", pa.string()),
    ("admission_id", pa.string()), ("section_id", pa.string()), ("status", pa.string()),
    ("attendee__name", pa.string()), ("attendee__email", pa.string()),
    ("scanned_at", _TS), ("created_at", _TS), ("updated_at", _TS),
])

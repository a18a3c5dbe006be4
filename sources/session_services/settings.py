"""Constants of the Session Services API (fixed by the API, not user configuration)."""

API_VERSION = "2025-09-22"  # sent on every request to pin behaviour
MAX_PAGE_SIZE = 100  # the API answers 422 above this
MUTABLE_DAYS = 60  # orders can be refunded or disputed for 60 days after creation
WATERMARK_MARGIN_SECONDS = 2  # the Date header has whole seconds; re-emit a little more
LADDER_MAX = 200  # stored order-page cursors per tenant (thinned beyond this)
ORDER_READS_PER_EVENT = 10  # more changed orders than this: read the event's tickets instead
SCAN_GRACE_HOURS = 12  # tickets of an event are read whole this long after its entry window

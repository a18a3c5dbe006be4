"""Timestamp helpers shared by sources: parse ISO 8601 with `Z`, format with milliseconds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import List, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.compute as pc


def parse_ts(value: Union[str, datetime, date]) -> datetime:
    """Parse an ISO 8601 timestamp or date to an aware UTC datetime (a date means midnight UTC)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def format_ms(value: datetime) -> str:
    """Format as UTC ISO 8601 with exactly three fractional digits and `Z`."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(value: datetime) -> int:
    """Exact epoch milliseconds of an aware datetime (no float rounding)."""
    return (value - _EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(value: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds (exact)."""
    return _EPOCH + timedelta(milliseconds=value)


def arrow_times(values: Sequence[Optional[str]]) -> pa.Array:
    """ISO 8601 texts with `Z` (or None) as a UTC microsecond timestamp array, ms-exact.

    One vectorized cast per page instead of a `datetime` per value; text that is not such a
    timestamp raises `ValueError` (pyarrow's `ArrowInvalid`).
    """
    return pc.cast(pa.array(values, pa.string()), pa.timestamp("ms", tz="UTC")).cast(
        pa.timestamp("us", tz="UTC"))


def epoch_ms_list(values: Sequence[str]) -> List[int]:
    """Epoch milliseconds of ISO 8601 texts with `Z`, parsed in one vectorized cast."""
    return pc.cast(pa.array(values, pa.string()), pa.timestamp("ms", tz="UTC")).cast(
        pa.int64()).to_pylist()

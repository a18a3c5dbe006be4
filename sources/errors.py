"""The error types sessionsync raises and catches, in one small module both sides import.

Sources raise them; the runner (`pipelines/`) and the schedulers (`schedules/`) catch them.
Keeping them here, away from the HTTP layer, lets the runner import them without importing
httpx, and keeps `sources/` free of any import of `pipelines/`.
"""

from __future__ import annotations

from typing import Optional


class SyncError(Exception):
    """An error a user can act on; its message is one line and holds no secret."""


class ApiError(SyncError):
    """A request that failed for good: a non-retryable status, or retries exhausted."""

    def __init__(self, source: str, endpoint: str, status: Optional[int], message: str) -> None:
        self.source, self.endpoint, self.status, self.message = source, endpoint, status, message
        what = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{source}: {endpoint} failed with {what}: {message}")


class PaginationError(SyncError):
    """A paginator refused to go on (repeated cursor, page cap, a page it cannot trust)."""

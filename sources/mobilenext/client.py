"""HTTP client and paginator for the Mobile Next API."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Dict, Iterator, List, Optional

from sources.http import ApiClient, BearerAuth, HttpConfig, PaginationError
from sources.mobilenext.settings import API_PREFIX, MAX_PAGE_SIZE, ORG_HEADER
from sources.paging import Paginator
from sources.timeutil import format_ms, parse_ts

SOURCE = "mobilenext"


def _error_message(body: Any) -> Optional[str]:
    error = body["error"]
    return f"{error['code']}: {error['message']}"


def make_client(base_url: str, api_key: str, http: HttpConfig) -> ApiClient:
    """An `ApiClient` for Mobile Next: Bearer auth and its error format."""
    return ApiClient(SOURCE, base_url, BearerAuth(api_key), http, error_message=_error_message)


class TieSafeBeforePaginator(Paginator):
    """Pages a newest-first list with a strictly-`before` cursor without losing tie groups.

    The API's cursor is the `createdAt` of a page's last session, and `before` is strict, so
    the rest of a millisecond group that a page ends inside would be skipped. This paginator
    emits only the sessions newer than that last millisecond, and asks for the
    next page with `before = last millisecond + 1 ms`, so the whole group comes again at the
    top of the next page. A page made of one millisecond only is re-read with the largest page
    size; a group larger than that cannot be listed and stops the sync with a clear error.

    Example: page size 3, sessions at t=9, 8, 8 | 8, 7. Page 1 ends at 8, so it emits the 9
    and asks `before=8.001`; page 2 returns 8, 8, 8 (all three), emits them, and so on.

    Args:
        client: the API client.
        org_id: organization to page.
        page_size: requested `limit`.
        stop_at: stop once every session created at or after this instant has been emitted.
        start_before: begin with sessions created strictly before this instant (a backfill
            window's end); None starts at the newest.
    """

    def __init__(self, client: ApiClient, org_id: str, page_size: int, stop_at: datetime,
                 start_before: Optional[datetime] = None) -> None:
        super().__init__(SOURCE, f"GET {API_PREFIX}/sessions", client.config.max_pages)
        self.client = client
        self.org_id = org_id
        self.limit = page_size
        self.stop_at = stop_at
        self.start_before = start_before

    def pages(self) -> Iterator[List[Dict[str, Any]]]:
        """Yield lists of sessions, newest first, each session once, all >= `stop_at`."""
        before = format_ms(self.start_before) if self.start_before else None
        while True:
            params: Dict[str, Any] = {"limit": self.limit}
            if before is not None:
                params["before"] = before
            body = self.client.get_json(f"{API_PREFIX}/sessions", params=params,
                                        headers={ORG_HEADER: self.org_id})
            sessions = _check_page(body)
            if not sessions:
                return
            last = parse_ts(sessions[-1]["createdAt"])
            more = "nextCursor" in body and body["nextCursor"] is not None
            if not more or last < self.stop_at:
                yield [s for s in sessions if parse_ts(s["createdAt"]) >= self.stop_at]
                return
            head = [s for s in sessions if parse_ts(s["createdAt"]) > last]
            if not head:
                if self.limit < MAX_PAGE_SIZE:
                    self.limit = MAX_PAGE_SIZE  # the same `before` again, with room for the group
                    continue
                raise PaginationError(
                    f"{SOURCE}: org {self.org_id} has more than {MAX_PAGE_SIZE} sessions created"
                    f" in the millisecond {sessions[-1]['createdAt']}; the list API cannot page"
                    " through them"
                )
            yield head
            before = format_ms(last + timedelta(milliseconds=1))
            self.advance(before)


def _check_page(body: Any) -> List[Dict[str, Any]]:
    """The `data` of a list page, refusing a page whose shape is not the contract's."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise PaginationError(f"{SOURCE}: a sessions page without a `data` list")
    for s in body["data"]:
        if not isinstance(s, dict) or "id" not in s or "createdAt" not in s:
            raise PaginationError(f"{SOURCE}: a sessions page with a record lacking id/createdAt")
    return body["data"]

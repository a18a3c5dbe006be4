"""HTTP client and paginator for the Mobile Next API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

import pyarrow as pa

from sources.errors import PaginationError
from sources.http import ApiClient, BearerAuth, HttpConfig
from sources.mobilenext.settings import API_PREFIX, MAX_PAGE_SIZE, ORG_HEADER
from sources.paging import Paginator
from sources.timeutil import epoch_ms, epoch_ms_list, format_ms, from_epoch_ms

SOURCE = "mobilenext"


def _error_message(body: Any) -> Optional[str]:
    error = body["error"]
    return f"{error['code']}: {error['message']}"


def make_client(base_url: str, api_key: str, http: HttpConfig) -> ApiClient:
    """An `ApiClient` for Mobile Next: Bearer auth and its error format."""
    return ApiClient(SOURCE, base_url, BearerAuth(api_key), http, error_message=_error_message)


class TieSafeBeforePaginator(Paginator[Tuple[List[Dict[str, Any]], List[int]]]):
    """Pages a newest-first list with a strictly-`before` cursor without losing tie groups.

    The API's cursor is the `createdAt` of a page's last session, and `before` is strict, so
    the rest of a millisecond group that a page ends inside would be skipped. This paginator
    emits only the sessions newer than that last millisecond, and asks for the
    next page with `before = last millisecond + 1 ms`, so the whole group comes again at the
    top of the next page. A page made of one millisecond only is re-read with the largest page
    size; a group larger than that cannot be listed and stops the sync with a clear error.

    Example: page size 3, sessions at t=9, 8, 8 | 8, 7. Page 1 ends at 8, so it emits the 9
    and asks `before=8.001`; page 2 returns 8, 8, 8 (all three), emits them, and so on.
    Pages are `(sessions, created)`, `created` being their `createdAt` in epoch ms (parsed
    once), newest first, each session once, all created at or after `stop_at`.

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
        first: Dict[str, Any] = {"limit": page_size}
        if start_before is not None:
            first["before"] = format_ms(start_before)
        super().__init__(client, f"{API_PREFIX}/sessions", first, {ORG_HEADER: org_id})
        self.org_id = org_id
        self.stop_at = epoch_ms(stop_at)

    def turn(self, items: List[Any], body: Dict[str, Any], params: Dict[str, Any]
             ) -> Tuple[Optional[Tuple[List[Dict[str, Any]], List[int]]],
                        Optional[Dict[str, Any]]]:
        sessions, created = _check_page(items)
        if not sessions:
            return None, None
        last = created[-1]
        if body.get("nextCursor") is None or last < self.stop_at:
            return _since(sessions, created, self.stop_at), None
        head = _since(sessions, created, last + 1)
        if not head[0]:
            if params["limit"] < MAX_PAGE_SIZE:  # the same `before`, with room for the group
                return None, dict(params, limit=MAX_PAGE_SIZE)
            raise PaginationError(
                f"{SOURCE}: org {self.org_id} has more than {MAX_PAGE_SIZE} sessions created"
                f" in the millisecond {sessions[-1]['createdAt']}; the list API cannot page"
                " through them"
            )
        return head, dict(params, before=format_ms(from_epoch_ms(last + 1)))


def _since(sessions: List[Dict[str, Any]], created: List[int],
           lo: int) -> Tuple[List[Dict[str, Any]], List[int]]:
    """The sessions (and their `created`) created at or after `lo` epoch ms."""
    keep = [i for i, ms in enumerate(created) if ms >= lo]
    return [sessions[i] for i in keep], [created[i] for i in keep]


def _check_page(sessions: List[Any]) -> Tuple[List[Dict[str, Any]], List[int]]:
    """A page's sessions and each one's `createdAt` in epoch ms, refusing a record whose
    shape is not the contract's."""
    try:
        created = epoch_ms_list([s["createdAt"] for s in sessions])
        if not all(isinstance(s["id"], str) for s in sessions):
            raise TypeError
    except (TypeError, KeyError, ValueError, pa.ArrowException):
        raise PaginationError(f"{SOURCE}: a sessions page with a record lacking a valid "
                              "id/createdAt") from None
    if None in created:
        raise PaginationError(f"{SOURCE}: a sessions page with a record lacking createdAt")
    return sessions, created

"""HTTP client and paginator for the sessionvision API."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import msgspec

from sources.errors import PaginationError
from sources.http import ApiClient, BearerAuth, HttpConfig
from sources.paging import Paginator
from sources.sessionvision.settings import MAX_PAGE_SIZE, PROMOTED
from sources.structs import page_decoder

SOURCE = "sessionvision"


class Event(msgspec.Struct):
    """An event as the events list sends it: the fields the table needs, and `properties`
    (an open-ended JSON object) kept as its JSON text, unread. A missing field fails the
    page, as a missing key did; other fields the API adds are skipped."""

    id: str
    event: Optional[str]
    distinct_id: Optional[str]
    session_id: Optional[str]
    timestamp: Optional[str]
    properties: msgspec.Raw = msgspec.Raw(b"null")  # absent: no properties


# The well-known properties promoted to columns, read out of an event's properties text; the
# rest of the object is skipped unread. Fields are the column names, in `PROMOTED`'s order.
Promoted = msgspec.defstruct("Promoted", [(column, Any, None) for column in PROMOTED.values()],
                             rename={column: key for key, column in PROMOTED.items()})
PROMOTED_LIST = msgspec.json.Decoder(List[Optional[Promoted]])  # type: ignore[valid-type]

EVENT_PAGE = page_decoder(Event)


def _error_message(body: Any) -> Optional[str]:
    return f"{body['error']} ({body['code']})"


def make_client(base_url: str, api_token: str, http: HttpConfig) -> ApiClient:
    return ApiClient(SOURCE, base_url, BearerAuth(api_token), http,
                     error_message=_error_message)


class NextCursorPaginator(Paginator[List[Dict[str, Any]]]):
    """Pages a keyset list with `cursor=<meta.next_cursor>` until `has_more` is false.

    The other parameters are sent unchanged on every page (the API refuses a cursor with
    changed filters). `start` resumes at a cursor an earlier run kept; `next_cursor` is the
    cursor of the page after the last one yielded (None once the list ended).
    Example: `GET /events?date_from=2026-11-01&limit=1000` ->
    `{"data": [...], "meta": {"next_cursor": "eyJ...", "has_more": true}}` ->
    `GET /events?date_from=2026-11-01&limit=1000&cursor=eyJ...` -> ... `"has_more": false`.
    """

    def __init__(self, client: ApiClient, path: str,
                 params: Optional[Dict[str, Any]] = None, start: Optional[str] = None,
                 decode: Optional[Callable[[bytes], Any]] = None) -> None:
        super().__init__(client, path, {"limit": MAX_PAGE_SIZE, **(params or {}),
                                        **({"cursor": start} if start else {})}, decode=decode)
        self.next_cursor = start

    def items(self, body: Any) -> List[Any]:
        try:
            data, meta = body["data"], body["meta"]
            bool(meta["has_more"]), meta.get("next_cursor")
        except (KeyError, TypeError, AttributeError):
            raise PaginationError(f"{self.source}: GET {self.path} page without "
                                  "`data` and `meta`") from None
        if not isinstance(data, list):
            raise PaginationError(f"{self.source}: GET {self.path} `data` is not a list")
        return data

    def turn(self, items: List[Any], body: Dict[str, Any], params: Dict[str, Any]
             ) -> Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]]]:
        more, cursor = bool(body["meta"]["has_more"]), body["meta"].get("next_cursor")
        if more and not cursor:
            raise PaginationError(f"{self.source}: GET {self.path} says has_more "
                                  "but gives no next_cursor")
        self.next_cursor = cursor if more else None
        return items, (dict(params, cursor=cursor) if more else None)

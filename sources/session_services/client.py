"""HTTP client and paginator for the Session Services API."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from sources.http import ApiClient, BearerAuth, HttpConfig
from sources.paging import Paginator
from sources.session_services.settings import API_VERSION, MAX_PAGE_SIZE

SOURCE = "session_services"


def _error_message(body: Any) -> Optional[str]:
    issues = "; ".join(f"{'.'.join(map(str, i['path']))}: {i['message']}"
                       for i in body.get("issues") or [])
    return f"{body['message']}" + (f" ({issues})" if issues else "")


def make_client(base_url: str, tenant_id: str, token: str, http: HttpConfig) -> ApiClient:
    """A client bound to one tenant: its `x-tenant-id`, its token, the pinned API version."""
    return ApiClient(f"{SOURCE} tenant {tenant_id}", base_url, BearerAuth(token), http,
                     headers={"x-tenant-id": tenant_id, "x-api-version": API_VERSION},
                     error_message=_error_message)


class AfterCursorPaginator(Paginator[Tuple[List[Dict[str, Any]], Optional[str]]]):
    """Pages an ascending-id collection forward with the opaque `after` cursor.

    Yields `(records, cursor_used)` so a caller can store the cursor that fetched a page and
    resume there later (cursors may be stored and sent back, never built). `after: null`
    ends the collection; a cursor the server repeats stops the run.

    Example: `GET /orders?limit=100` -> `{"orders": [...], "after": "eyJ..."}` ->
    `GET /orders?limit=100&after=eyJ...` -> ... -> `{"orders": [...], "after": null}`.
    """

    def __init__(self, client: ApiClient, path: str, key: str,
                 params: Optional[Dict[str, Any]] = None, start: Optional[str] = None) -> None:
        super().__init__(client, path, {"limit": MAX_PAGE_SIZE, **(params or {}),
                                        **({"after": start} if start else {})})
        self.items_key = key

    def turn(self, items: List[Any], body: Dict[str, Any], params: Dict[str, Any]
             ) -> Tuple[Tuple[List[Dict[str, Any]], Optional[str]], Optional[Dict[str, Any]]]:
        after = body.get("after")
        return (items, params.get("after")), (dict(params, after=after) if after else None)

"""HTTP client for the Tagbase API: by-id reads with bounded concurrency."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, Optional, Tuple

from sources.byid import fetch_each
from sources.http import ApiClient, BearerAuth, HttpConfig, segment

SOURCE = "tagbase"
JSONAPI = "application/vnd.api+json"


def _error_message(body: Any) -> Optional[str]:
    errors = body.get("errors") or []
    return "; ".join(" ".join(filter(None, (e.get("title"), e.get("detail")))) for e in errors)


def make_client(base_url: str, api_key: str, http: HttpConfig) -> ApiClient:
    """A client sending the whole `key_<id>:<secret>` string as the Bearer token."""
    return ApiClient(SOURCE, base_url, BearerAuth(api_key), http,
                     headers={"Accept": JSONAPI}, error_message=_error_message)


def fetch_by_id(client: ApiClient, kind: str, ids: Iterable[str],
                concurrency: int) -> Iterator[Tuple[str, Optional[Dict[str, Any]]]]:
    """`(id, data)` for each id of `kind` (`sessions` or `tags`); data is None on a 404."""
    ids = list(ids)
    paths = [f"/api/v1/{kind}/{segment(rid)}" for rid in ids]
    for rid, (_, body) in zip(ids, fetch_each(client, paths, concurrency), strict=True):
        yield rid, body["data"] if body is not None else None

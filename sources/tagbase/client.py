"""HTTP client for the Tagbase API: by-id reads with bounded concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple

from sources.http import ApiClient, ApiError, BearerAuth, HttpConfig

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
    """`(id, data)` for each id of `kind` (`sessions` or `tags`); data is None on a 404.

    The first read runs alone, the rest on `concurrency` threads sharing one connection pool.
    Any failure but a 404 (401, retries used up) raises and stops the run, so nothing is
    recorded from a guess.
    """
    def one(rid: str) -> Tuple[str, Optional[Dict[str, Any]]]:
        try:
            return rid, client.get_json(f"/api/v1/{kind}/{rid}")["data"]
        except ApiError as exc:
            if exc.status == 404:
                return rid, None
            raise

    ids = list(ids)
    if not ids:
        return
    yield one(ids[0])  # alone, so its `Date` is no later than any other read's
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        yield from pool.map(one, ids[1:])

"""Paginator base: the one paging loop every API's paginator inherits.

The base sends each request, checks the page is the shape the API promised (a JSON object
with a list under `items_key`), and refuses to loop: a request it sent before, or more
pages than the configured cap, stops the sync with a `PaginationError` instead of spinning
or silently skipping data. A subclass only says what to hand the caller from a page and
what to ask for next (`turn`), so no paginator writes its own `while` loop.

Example, a list paged with `?after=<the page's after>` until `after` is null:

    class AfterPaginator(Paginator[List[Any]]):
        items_key = "items"

        def turn(self, items, body, params):
            after = body.get("after")
            return items, (dict(params, after=after) if after else None)
"""

from __future__ import annotations

from typing import (
    Any,
    Callable,
    Dict,
    Generator,
    Generic,
    Hashable,
    List,
    Mapping,
    Optional,
    Set,
    Tuple,
    TypeVar,
)

import orjson

from sources.errors import PaginationError
from sources.http import ApiClient

T = TypeVar("T")
Params = Dict[str, Any]


class Paginator(Generic[T]):
    """Pages one list endpoint; subclasses implement `turn()` (and may override `items`).

    Args:
        client: the API client (its `config.max_pages` is the page cap).
        path: the list endpoint's path.
        params: query parameters of the first request.
        headers: extra headers sent on every request.
        decode: parses each page's body (default: orjson; `sources.structs.page_decoder`
            reads the records into typed structs).
    """

    items_key = "data"  # the page's list of records

    def __init__(self, client: ApiClient, path: str, params: Optional[Params] = None,
                 headers: Optional[Mapping[str, str]] = None,
                 decode: Optional[Callable[[bytes], Any]] = None) -> None:
        self.client, self.path = client, path
        self.decode = decode or orjson.loads
        self.source, self.endpoint = client.source, f"GET {path}"
        self.first: Params = dict(params or {})
        self.headers = headers
        self.max_pages = client.config.max_pages
        self.page_count = 0

    def turn(self, items: List[Any], body: Dict[str, Any],
             params: Params) -> Tuple[Optional[T], Optional[Params]]:
        """What to hand the caller for this page (None: nothing) and the parameters of the
        next request (None: the list ended). `params` are this page's request's."""
        raise NotImplementedError

    def items(self, body: Any) -> List[Any]:
        """The records of a page, refusing a page that is not the contract's shape."""
        if not isinstance(body, dict) or not isinstance(body.get(self.items_key), list):
            raise PaginationError(f"{self.source}: {self.endpoint} page without a "
                                  f"`{self.items_key}` list")
        return body[self.items_key]

    def pages(self) -> Generator[T, None, None]:
        """Request page after page until `turn` says the list ended; yield what it hands."""
        seen: Set[Hashable] = set()
        params: Optional[Params] = self.first
        while params is not None:
            seen.add(_key(params))
            body = self.client.get_json(self.path, params=params, headers=self.headers,
                                        decode=self.decode)
            page, params = self.turn(self.items(body), body, params)
            if page is not None:
                yield page
            if params is not None:
                self._check(params, seen)

    def _check(self, params: Params, seen: Set[Hashable]) -> None:
        """Refuse a request sent before (the API repeated a cursor) or a runaway."""
        self.page_count += 1
        if _key(params) in seen:
            raise PaginationError(
                f"{self.source}: {self.endpoint} returned a cursor it returned before "
                f"({_cursor(params, self.first)!r}); stopping instead of looping")
        if self.page_count >= self.max_pages:
            raise PaginationError(
                f"{self.source}: {self.endpoint} passed the page cap of {self.max_pages} pages;"
                " raise sources.http.max_pages if this is expected")


def _key(params: Params) -> Hashable:
    return tuple(sorted((k, str(v)) for k, v in params.items()))


def _cursor(params: Params, first: Params) -> Any:
    """What changed from the first request (the cursor), for the error message."""
    changed = {k: v for k, v in params.items() if first.get(k) != v}
    return next(iter(changed.values())) if len(changed) == 1 else changed

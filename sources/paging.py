"""Paginator base: the loop guard every API's paginator inherits.

A paginator's `pages()` turns one page into the request for the next, until the API says
there is none. The base refuses to loop: a cursor seen before, or more pages than the
configured cap, stops the sync with a `PaginationError` instead of spinning or silently
skipping data.
"""

from __future__ import annotations

from typing import Hashable, Set

from sources.http import PaginationError


class Paginator:
    """Tracks cursors and page count; subclasses implement `pages()` and call `advance()`.

    Args:
        source: source name for error messages.
        endpoint: endpoint for error messages.
        max_pages: hard cap on pages in one pass.
    """

    def __init__(self, source: str, endpoint: str, max_pages: int) -> None:
        self.source = source
        self.endpoint = endpoint
        self.max_pages = max_pages
        self.page_count = 0
        self._seen: Set[Hashable] = set()

    def advance(self, cursor: Hashable) -> None:
        """Record that the next request will use `cursor`; refuse a repeat or a runaway."""
        self.page_count += 1
        if cursor in self._seen:
            raise PaginationError(
                f"{self.source}: {self.endpoint} returned a cursor it returned before ({cursor!r});"
                " stopping instead of looping"
            )
        if self.page_count >= self.max_pages:
            raise PaginationError(
                f"{self.source}: {self.endpoint} passed the page cap of {self.max_pages} pages;"
                " raise sources.http.max_pages if this is expected"
            )
        self._seen.add(cursor)

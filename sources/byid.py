"""Reading many records by id, a few requests at a time.

For APIs (or parts of them) that can only be read one record at a time: Tagbase sessions and
tags, sessionvision sessions and persons that changed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Any, Iterable, Iterator, Optional, Tuple

from sources.errors import ApiError
from sources.http import ApiClient


def fetch_each(client: ApiClient, paths: Iterable[str],
               concurrency: int) -> Iterator[Tuple[str, Optional[Any]]]:
    """`(path, body)` for each path, in order; body is None when the API answers 404.

    The first read runs alone (so its `Date` header is no later than any other read's, which
    callers use as a conservative "read at" time), the rest on `concurrency` threads sharing
    the client's connection pool. Any failure but a 404 raises and stops the run, so nothing
    is recorded from a guess.
    """
    def one(path: str) -> Tuple[str, Optional[Any]]:
        try:
            return path, client.get_json(path)
        except ApiError as exc:
            if exc.status == 404:
                return path, None
            raise

    paths = list(paths)
    if not paths:
        return
    yield one(paths[0])
    # each read runs in a copy of this context, so run counters land under this resource
    contexts = [copy_context() for _ in paths[1:]]
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        yield from pool.map(lambda ctx, path: ctx.run(one, path), contexts, paths[1:])

"""Fast unit tests of the shared read machinery: the paginator base, the partitioned-scan
driver, the change detector and deletion marker, and the hand-off between resources.

The API is an `httpx.MockTransport` (a vendor's host stands in for nothing else); each test
runs in milliseconds. The end-to-end tests run the same code against the sandbox.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import dlt
import httpx
import pyarrow as pa
import pytest

from sources import partitions, scan
from sources.changes import Known, mark_deleted
from sources.depends import Handoff
from sources.errors import ApiError, PaginationError, SyncError
from sources.http import ApiClient, BearerAuth, HttpConfig
from sources.paging import Paginator
from sources.session_services.client import AfterCursorPaginator
from sources.sessionvision.client import NextCursorPaginator

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, max_pages: int = 100) -> ApiClient:
    """An `ApiClient` whose transport is `handler` (no socket), no retries."""
    config = HttpConfig()
    config.max_pages, config.max_retries = max_pages, 0
    api = ApiClient("unit", "https://api.example", BearerAuth("s3cret"), config)
    api._client = httpx.Client(base_url="https://api.example",
                               transport=httpx.MockTransport(handler))
    return api


class AfterPaginator(Paginator[List[Any]]):
    """The docstring's example: `?after=` until `after` is null."""

    items_key = "items"

    def turn(self, items: List[Any], body: Dict[str, Any], params: Dict[str, Any]
             ) -> Tuple[Optional[List[Any]], Optional[Dict[str, Any]]]:
        after = body.get("after")
        return items, (dict(params, after=after) if after else None)


def listing(pages: Dict[Optional[str], Dict[str, Any]], seen: List[Dict[str, str]]) -> Handler:
    """Serve `pages` by the request's `after` parameter; note every request's query."""
    def handle(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        return httpx.Response(200, json=pages[params.get("after")],
                              headers={"date": "Tue, 01 Dec 2026 10:00:00 GMT"})
    return handle


# --- the paginator base --------------------------------------------------------------

def test_base_loop_pages_until_the_subclass_says_the_list_ended() -> None:
    seen: List[Dict[str, str]] = []
    api = client(listing({None: {"items": [1, 2], "after": "a"},
                          "a": {"items": [3], "after": "b"},
                          "b": {"items": [], "after": None}}, seen))
    pages = list(AfterPaginator(api, "/things", {"limit": 2}).pages())
    assert pages == [[1, 2], [3], []]
    assert seen == [{"limit": "2"}, {"limit": "2", "after": "a"},
                    {"limit": "2", "after": "b"}]


def test_base_refuses_a_repeated_cursor_without_the_subclass_remembering() -> None:
    seen: List[Dict[str, str]] = []
    api = client(listing({None: {"items": [1], "after": "a"},
                          "a": {"items": [2], "after": "a"}}, seen))
    pages = AfterPaginator(api, "/things").pages()
    with pytest.raises(PaginationError, match=r"GET /things returned a cursor it returned "
                                              r"before \('a'\)"):
        list(pages)
    assert len(seen) == 2, "stopped at the repeat, not after more requests"


def test_base_stops_at_the_page_cap() -> None:
    pages: Dict[Optional[str], Dict[str, Any]] = {None: {"items": [0], "after": "1"}}
    pages.update({str(i): {"items": [i], "after": str(i + 1)} for i in range(1, 50)})
    seen: List[Dict[str, str]] = []
    with pytest.raises(PaginationError, match="passed the page cap of 3 pages"):
        list(AfterPaginator(client(listing(pages, seen), max_pages=3), "/things").pages())
    assert len(seen) == 3


@pytest.mark.parametrize("body", [[1, 2], {"items": None}, {"other": []}, "text"])
def test_base_refuses_a_page_of_the_wrong_shape(body: Any) -> None:
    api = client(lambda request: httpx.Response(200, json=body))
    with pytest.raises(PaginationError, match="GET /things page without a `items` list"):
        list(AfterPaginator(api, "/things").pages())


def test_after_cursor_paginator_yields_the_cursor_that_fetched_each_page() -> None:
    seen: List[Dict[str, str]] = []
    api = client(listing({"s": {"orders": [1], "after": "t"},
                          "t": {"orders": [2], "after": None}}, seen))
    pages = list(AfterCursorPaginator(api, "/orders", "orders", start="s").pages())
    assert pages == [([1], "s"), ([2], "t")]
    assert [p["after"] for p in seen] == ["s", "t"]


def test_next_cursor_paginator_keeps_the_cursor_after_the_last_page_read() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        more = cursor != "c2"
        return httpx.Response(200, json={"data": [cursor], "meta": {
            "has_more": more, "next_cursor": ("c1" if cursor is None else "c2") if more
            else None}})
    paginator = NextCursorPaginator(client(handle), "/persons", {"limit": 5})
    pages = paginator.pages()
    assert next(pages) == [None] and paginator.next_cursor == "c1"
    assert list(pages) == [["c1"], ["c2"]] and paginator.next_cursor is None


def test_next_cursor_paginator_refuses_has_more_without_a_cursor() -> None:
    api = client(lambda request: httpx.Response(
        200, json={"data": [], "meta": {"has_more": True, "next_cursor": None}}))
    with pytest.raises(PaginationError, match="says has_more but gives no next_cursor"):
        list(NextCursorPaginator(api, "/events").pages())


# --- the partitioned-scan driver -----------------------------------------------------

def refusing(status: int) -> ApiError:
    return ApiError("unit", "GET /x", status, "refused")


def test_a_partition_fails_alone_only_on_its_statuses() -> None:
    api = client(lambda request: httpx.Response(200, json={}))
    shared = scan.Partition("p1", api, "unit project p1",
                            refused_by=frozenset({403, 404}))
    with partitions.collecting() as failures:
        with shared.guard():
            raise refusing(403)
        assert shared.failed
        with pytest.raises(ApiError):  # a 401 here is the whole source's credential
            with scan.Partition("p2", api, "unit project p2",
                                refused_by=frozenset({403, 404})).guard():
                raise refusing(401)
        with pytest.raises(ApiError):  # a server error is never one partition's
            with scan.Partition("p3", api, "unit project p3").guard():
                raise refusing(500)
    assert failures == ["unit project p1: unit: GET /x failed with HTTP 403: refused"]


def test_outside_a_collecting_run_a_refused_partition_fails_the_run() -> None:
    api = client(lambda request: httpx.Response(200, json={}))
    with pytest.raises(SyncError, match="HTTP 404"):
        scan.Partition("p1", api, "unit").fail(refusing(404))


class Part(scan.Partition):
    def __init__(self, pid: str, api: ApiClient, refuse_begin: bool = False) -> None:
        super().__init__(pid, api, f"unit {pid}")
        self.refuse_begin, self.begun = refuse_begin, 0

    def begin(self) -> None:
        self.begun += 1
        if self.refuse_begin:
            raise refusing(401)


def test_each_reads_the_partitions_in_turn_and_skips_a_refused_one(tmp_path: Path) -> None:
    api = client(lambda request: httpx.Response(200, json={}))
    parts = [Part("a", api), Part("b", api, refuse_begin=True), Part("c", api)]

    def read(part: Part, st: Dict[str, Any]) -> Iterator[str]:
        yield f"{part.id}1"
        if part.id == "c":
            raise refusing(403)  # refused halfway: what came before stays
        st["done"] = True
        yield f"{part.id}2"

    @dlt.resource(name="things")
    def things() -> Iterator[str]:
        yield from scan.each(parts, "parts", read)
        yield from scan.each(parts, "parts", read)  # a second resource: failed ones skipped

    with partitions.collecting() as failures:
        got = list(things())
    assert got == ["a1", "a2", "c1", "a1", "a2"]
    assert [p.failed for p in parts] == [False, True, True]
    assert parts[1].begun == 1, "a failed partition is not begun again"
    assert len(failures) == 2 and failures[0].startswith("unit b: ")


class Counting(scan.Scan[scan.Partition, int]):
    """Pages 0..n-1 (or fails after the first); writes the even ones."""

    def __init__(self, part: scan.Partition, n: int, error: Optional[Exception] = None,
                 bounded: bool = False) -> None:
        super().__init__(part)
        self.n, self.error, self.bounded = n, error, bounded
        self.threads: set[str] = set()
        self.committed: Optional[bool] = None
        self.finished = False

    def pages(self) -> Iterator[int]:
        for i in range(self.n):
            self.threads.add(threading.current_thread().name)
            if i == 1 and self.error is not None:
                raise self.error
            yield i

    def take(self, page: int) -> Optional[pa.Table]:
        return pa.table({"id": [f"{self.partition.id}{page}"]}) if page % 2 == 0 else None

    def finish(self) -> Optional[pa.Table]:
        self.finished = True
        return None

    def commit(self, wrote: bool) -> None:
        self.committed = wrote


def test_run_pages_partitions_at_once_and_fails_a_refused_one_alone() -> None:
    api = client(lambda request: httpx.Response(200, json={}))
    ok = Counting(scan.Partition("a", api, "unit a"), 5)
    quiet = Counting(scan.Partition("q", api, "unit q"), 1, bounded=False)
    refused = Counting(scan.Partition("r", api, "unit r"), 5, error=refusing(404))
    window = Counting(scan.Partition("w", api, "unit w"), 3, bounded=True)
    with partitions.collecting() as failures:
        tables = list(scan.run([ok, quiet, refused, window], workers=4))
    ids = sorted(i for t in tables for i in t.column("id").to_pylist())
    assert ids == ["a0", "a2", "a4", "q0", "r0", "w0", "w2"]
    assert len(tables) == 1, "pages are batched, not handed over one by one"
    assert ok.committed is True and quiet.committed is True
    assert refused.partition.failed and refused.committed is None and not refused.finished
    assert window.finished and window.committed is None, "a bounded scan moves no checkpoint"
    assert failures == ["unit r: unit: GET /x failed with HTTP 404: refused"]
    assert all(t.startswith("fanout") for s in (ok, refused) for t in s.threads)


def test_run_stops_on_an_error_that_is_not_a_partition_refusal() -> None:
    api = client(lambda request: httpx.Response(200, json={}))
    broken = Counting(scan.Partition("b", api, "unit b"), 5, error=refusing(500))
    with partitions.collecting(), pytest.raises(ApiError, match="HTTP 500"):
        list(scan.run([broken, Counting(scan.Partition("a", api, "unit a"), 3)], workers=2))
    assert broken.committed is None


# --- one change detector, one deletion marker ----------------------------------------

UTC_US = pa.timestamp("us", tz="UTC")


def at(hour: Optional[int]) -> Optional[datetime]:
    return None if hour is None else datetime(2026, 12, 1, hour, tzinfo=UTC)


def ids(table: Optional[pa.Table]) -> List[str]:
    assert table is not None
    return table.column("id").to_pylist()


def test_changed_keeps_new_rows_and_rows_that_differ_null_equal_to_null() -> None:
    loaded = pa.table({"id": ["a", "b", "c", "d"], "released_at": pa.array(
        [at(1), None, None, at(2)], pa.timestamp("us", tz="Etc/UTC")),
        "name": ["x", "y", "z", "w"]})
    known = Known(loaded, compare=["released_at"])
    fresh = pa.table({"id": ["a", "b", "c", "d", "e"], "released_at": pa.array(
        [at(1), None, at(3), None, None], UTC_US), "name": ["changed"] * 5})
    assert ids(known.changed(fresh)) == ["c", "d", "e"]
    assert ids(Known(loaded).changed(fresh)) == ["a", "b", "c", "d", "e"]
    assert ids(Known(loaded, compare=()).changed(fresh)) == ["e"]
    keep = pa.array([False, True, False, False, False])
    assert ids(known.changed(fresh, keep)) == ["b", "c", "d", "e"]
    assert known.changed(fresh.slice(0, 2)) is None
    assert Known(None).changed(fresh) is fresh
    assert Known(None).changed(fresh.slice(0, 0)) is None


def test_changed_rows_and_without_and_missing() -> None:
    loaded = pa.table({"id": ["a", "b", "c"], "role": ["admin", "member", None]})
    known = Known(loaded)
    rows: List[Dict[str, Any]] = [{"id": "a", "role": "admin"}, {"id": "b", "role": "admin"},
            {"id": "c", "role": None}, {"id": "d", "role": None}]
    assert [r["id"] for r in known.changed_rows(rows)] == ["b", "d"]
    assert [r["id"] for r in known.without(["a"]).changed_rows(rows)] == ["a", "b", "d"]
    gone = known.missing(["a", "x"])
    assert gone is not None and gone.column("id").to_pylist() == ["b", "c"]
    assert known.missing(["a", "b", "c"]) is None and Known(None).missing([]) is None
    assert sorted(known.keys()) == ["a", "b", "c"] and len(known) == 3


def test_mark_deleted_stamps_the_loaded_rows() -> None:
    rows = pa.table({"id": ["a"], "deleted_at": pa.array([None], UTC_US)})
    marked = mark_deleted(rows, datetime(2026, 12, 1, 10, 30, tzinfo=UTC))
    assert marked.to_pylist() == [{"id": "a", "deleted_at": datetime(2026, 12, 1, 10, 30,
                                                                     tzinfo=UTC)}]
    assert marked.schema == rows.schema


# --- explicit hand-off between resources ---------------------------------------------

def test_a_consumer_gets_the_handoff_none_without_producer_or_fails_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTRACT__NEXT_ITEM_MODE", "fifo")  # as sessionsync sets it
    found: Handoff[List[str]] = Handoff("unit", "producer")
    got: Dict[str, Any] = {}

    @dlt.resource(name="producer")
    def producer() -> Iterator[Dict[str, int]]:
        yield {"id": 1}
        found.publish(["p1"], "a")

    @dlt.resource(name="consumer")
    def consumer() -> Iterator[Dict[str, int]]:
        got["a"], got["b"] = found.get("a"), "unread"
        yield {"id": 2}

    @dlt.source(name="unit")
    def both() -> Any:
        return [producer, consumer]

    pipeline = dlt.pipeline("unit_handoff", pipelines_dir=str(tmp_path))
    pipeline.extract(both().with_resources("consumer"))
    assert got["a"] is None, "no producer this run: the consumer does without"

    with pytest.raises(Exception, match="consumer needs what producer read for a"):
        pipeline.extract(dlt.source(name="unit2")(lambda: [consumer, producer])())

    pipeline.extract(both())
    assert got["a"] == ["p1"]

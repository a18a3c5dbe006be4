"""Partitions paged at once, pacing under a rate limit, and DuckDB's memory limit: each still
loads every record once, and failures stay clear and local."""

from __future__ import annotations

import threading
import time
from typing import Iterator, List

import pytest

from pipelines.run import sync_source
from sandbox.core import Request
from sandbox.mobilenext import DEMO_KEY, MobileNextApi
from sources import fanout
from tests.conftest import assert_equals_truth, load_count


def test_an_organization_refused_mid_run_fails_alone(mobilenext: MobileNextApi) -> None:
    """org_beta's key membership is revoked after the organizations were listed: its page
    stream ends in a 403 while org_acme's, paged at the same time, still loads."""
    roles = mobilenext.keys[DEMO_KEY][1]

    def revoke(request: Request) -> None:
        if request.path == "/api/v1/sessions":
            roles.pop("org_beta", None)

    mobilenext.before_request = revoke
    result = sync_source("mobilenext")
    assert not result.ok
    assert result.error is not None and "organization org_beta" in result.error
    assert "HTTP 403" in result.error
    assert_equals_truth(mobilenext, orgs=("org_acme",))

    mobilenext.before_request = None
    roles["org_beta"] = "read"  # membership restored: org_beta's state never moved
    assert sync_source("mobilenext").ok
    assert_equals_truth(mobilenext)


def test_paced_sync_stays_under_the_api_rate_limit(mobilenext: MobileNextApi,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    mobilenext.faults.update(rate_limit=5)  # a real token bucket at the sandbox
    monkeypatch.setenv("SOURCES__HTTP__REQUESTS_PER_SECOND", "4")
    assert sync_source("mobilenext").ok
    assert mobilenext.injected.get("429-limit", 0) == 0
    assert_equals_truth(mobilenext)


def test_unpaced_sync_waits_out_429s_and_loses_nothing(mobilenext: MobileNextApi) -> None:
    mobilenext.faults.update(rate_limit=2)  # far below what two organizations ask for
    result = sync_source("mobilenext")
    assert result.ok, result.error
    assert mobilenext.injected.get("429-limit", 0) > 0
    assert_equals_truth(mobilenext)


def test_duckdb_out_of_memory_is_one_clear_line_and_the_next_run_recovers(
        mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG",
                       '{"memory_limit": "1MB"}')
    result = sync_source("mobilenext")
    assert not result.ok
    assert result.error is not None and "ran out of its memory limit" in result.error
    assert "memory_limit under [destination.duckdb.credentials]" in result.error
    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG")
    assert sync_source("mobilenext").ok
    assert_equals_truth(mobilenext)
    assert load_count("mobilenext") >= 1


def test_fanout_hands_on_each_stream_error_and_stops_when_the_reader_leaves() -> None:
    produced: List[int] = []
    lock = threading.Lock()

    def endless() -> Iterator[int]:
        n = 0
        while True:
            with lock:
                produced.append(n)
            n += 1
            yield n

    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("page 2 is malformed")

    reader = fanout.interleave([("endless", endless), ("broken", broken)], workers=2, depth=2)
    ends = []
    for message in reader:
        if isinstance(message, fanout.End):
            ends.append(message)
            break
    assert [(e.key, str(e.error)) for e in ends] == [("broken", "page 2 is malformed")]
    reader.close()  # the reader leaves: the endless stream must stop at its next page
    stopped_at = len(produced)
    time.sleep(0.3)
    assert len(produced) == stopped_at
    assert not [t for t in threading.enumerate() if t.name.startswith("fanout")]

"""Unit tests of pacing (`sources.http.Pace`) and of the client's 429 handling, over
`httpx.MockTransport`: no server, milliseconds each."""

from __future__ import annotations

import threading
import time
from typing import Callable, List

import httpx
import pytest

from sources import runstats
from sources.errors import ApiError, SyncError
from sources.http import ApiClient, BearerAuth, HttpConfig, Pace, _retry_after

DATE = "Mon, 02 Nov 2026 10:00:00 GMT"


def client(handler: Callable[[httpx.Request], httpx.Response], rate: float = 0.0,
           max_retries: int = 3) -> ApiClient:
    """An ApiClient whose requests `handler` answers in memory."""
    config = HttpConfig(connect_timeout=1, read_timeout=1, max_retries=max_retries,
                        backoff_base=0.001, backoff_max=0.001, requests_per_second=rate)
    api = ApiClient("unit", "http://api.test", BearerAuth("tok_secret_1234"), config)
    api._client = httpx.Client(base_url="http://api.test", auth=api.auth,
                               transport=httpx.MockTransport(handler))
    return api


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True}, headers={"Date": DATE})


def test_requests_start_evenly_spaced_at_the_rate() -> None:
    starts: List[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        starts.append(time.monotonic())
        return ok(request)

    api = client(record, rate=500)  # one request every 2 ms
    began = time.monotonic()
    for _ in range(20):
        api.get_json("/x")
    # the k-th request starts k slots after the first could: never more than the rate
    early = [k for k, at in enumerate(starts) if at < began + k * 0.002]
    assert not early, f"requests {early} started before their slot"


def test_threads_of_one_client_share_the_rate() -> None:
    starts: List[float] = []
    lock = threading.Lock()

    def record(request: httpx.Request) -> httpx.Response:
        with lock:
            starts.append(time.monotonic())
        return ok(request)

    api = client(record, rate=400)  # 2.5 ms apart across all threads
    threads = [threading.Thread(target=lambda: [api.get_json("/x") for _ in range(8)])
               for _ in range(4)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(starts) == 32
    starts.sort()
    # slots are booked 2.5 ms apart across the threads, not per thread: 32 starts take 31 slots
    early = [k for k, at in enumerate(starts) if at < began + k * 0.0025]
    assert not early, f"requests {early} started before their slot"


def test_no_limit_means_no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: List[float] = []
    monkeypatch.setattr("sources.http.time.sleep", slept.append)
    api = client(ok, rate=0)
    for _ in range(50):
        api.get_json("/x")
    assert api.pace.interval == 0.0
    assert slept == [], "a client with no rate limit slept"


def test_a_429_holds_every_thread_for_its_retry_after() -> None:
    calls: List[float] = []
    lock = threading.Lock()

    def limited(request: httpx.Request) -> httpx.Response:
        with lock:
            calls.append(time.monotonic())
            first = len(calls) == 1
        if first:
            return httpx.Response(429, headers={"Retry-After": "0.2", "Date": DATE},
                                  json={"error": "slow down"})
        return ok(request)

    api = client(limited)
    with runstats.collecting() as counts:
        api.get_json("/first")  # gets the 429, waits, succeeds on its retry
    later = threading.Thread(target=api.get_json, args=("/second",))
    later.start()
    later.join()
    assert calls[1] - calls[0] >= 0.19, "the retry did not wait for Retry-After"
    assert calls[2] - calls[0] >= 0.19
    waits = sum(c["rate_limit_waits"] for c in counts.values())
    retries = sum(c["retries"] for c in counts.values())
    assert (waits, retries) == (1, 1)


def test_hold_delays_the_next_start_on_any_thread() -> None:
    pace = Pace(0)
    pace.hold(0.05)
    began = time.monotonic()
    done = threading.Thread(target=pace.wait)
    done.start()
    done.join()
    assert time.monotonic() - began >= 0.049


def test_retries_are_bounded_and_the_error_names_them() -> None:
    api = client(lambda r: httpx.Response(503, json={"error": "down"}), max_retries=2)
    with pytest.raises(ApiError, match=r"unit: GET /x failed with HTTP 503: .*"
                                       r"\(gave up after 2 retries\)"):
        api.get_json("/x")


def test_a_negative_rate_is_refused_by_name() -> None:
    with pytest.raises(SyncError, match="requests_per_second must be 0"):
        Pace(-1)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert _retry_after("1.5") == 1.5
    assert _retry_after(None) is None
    assert _retry_after("-3") == 0.0
    assert _retry_after("Mon, 02 Nov 2020 10:00:00 GMT") == 0.0  # in the past: no wait

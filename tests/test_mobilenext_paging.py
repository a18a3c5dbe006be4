"""Pagination correctness: tie groups at page boundaries, sessions created mid-pagination."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pipelines.run import sync_source
from sandbox.core import Request, Served, parse_iso_ms
from sandbox.mobilenext import DEMO_KEY, MobileNextApi
from sandbox.serve import START
from tests.conftest import assert_equals_truth, loaded_sessions

# newest first: 95 singles, a group of 10 across the 100 boundary, singles up to 485, a group of
# 30 across the 500 boundary, a group of 150 (more than a 100-page), then 200 singles.
LAYOUT = [1] * 95 + [10] + [1] * 380 + [30] + [150] + [1] * 200


@pytest.fixture
def tied_api(monkeypatch: pytest.MonkeyPatch) -> MobileNextApi:
    api = MobileNextApi(parse_iso_ms(START), seed=3, sessions_per_day=0, history_days=1,
                        deletions_per_day=0)
    at = api.now_ms - 1
    for size in LAYOUT:  # newest first, each group one millisecond older than the previous
        api.create_sessions("org_acme", at, size)
        at -= api.rng.randint(1, 5)
    monkeypatch.setenv("SOURCES__MOBILENEXT__ORGANIZATION_IDS", '["org_acme"]')
    return api


def naive_count(url: str, limit: int) -> int:
    """How many sessions a plain nextCursor -> before loop sees (what the API doc suggests)."""
    seen, params = set(), {"limit": limit}
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    while True:
        body = httpx.get(f"{url}/api/v1/sessions", params=params, headers=headers).json()
        seen.update(s["id"] for s in body["data"])
        if "nextCursor" not in body:
            return len(seen)
        params = {"limit": limit, "before": body["nextCursor"]}


@pytest.mark.parametrize("page_size", [100, 500])
def test_tie_groups_across_page_boundaries_lose_nothing(
        tied_api: MobileNextApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        page_size: int) -> None:
    with Served(tied_api) as served:
        _configure(monkeypatch, served.url, tmp_path, page_size)
        total = len(tied_api.truth("org_acme"))
        assert naive_count(served.url, page_size) < total, "the layout must defeat naive paging"
        result = sync_source("mobilenext")
        assert result.ok, result.error
        assert result.rows["sessions"] == total == sum(LAYOUT)
        assert_equals_truth(tied_api, orgs=("org_acme",))


def test_tie_group_larger_than_max_page_fails_clearly(
        tied_api: MobileNextApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tied_api.create_sessions("org_acme", tied_api.now_ms, 501)
    with Served(tied_api) as served:
        _configure(monkeypatch, served.url, tmp_path, 500)
        result = sync_source("mobilenext")
    assert not result.ok
    assert "more than 500 sessions created in the millisecond" in (result.error or "")


def test_sessions_created_while_paginating_are_not_lost(mobilenext: MobileNextApi) -> None:
    existing = {s["id"] for org in ("org_acme", "org_beta") for s in mobilenext.truth(org)}
    newest_ms = mobilenext.orgs["org_acme"].created[-1]
    added: list = []

    def create_during_paging(request: Request) -> None:
        if request.path == "/api/v1/sessions" and mobilenext.count("/api/v1/sessions") == 1:
            with mobilenext.lock:
                # joins the tie group at the newest millisecond already read, and a newer one
                added.extend(mobilenext.create_sessions("org_acme", newest_ms, 3))
                mobilenext.advance(1)
                added.extend(mobilenext.create_sessions("org_acme", mobilenext.now_ms, 4))

    mobilenext.before_request = create_during_paging
    mobilenext.faults.update()  # no faults
    assert sync_source("mobilenext", "duckdb").ok
    mobilenext.before_request = None
    assert existing <= loaded_sessions().keys(), "a session that existed was lost"
    assert len(added) == 7

    assert sync_source("mobilenext", "duckdb").ok
    loaded = assert_equals_truth(mobilenext)
    assert set(added) <= loaded.keys()


def _configure(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path, page_size: int) -> None:
    for key, value in {
        "SOURCES__MOBILENEXT__BASE_URL": url,
        "SOURCES__MOBILENEXT__API_KEY": DEMO_KEY,
        "SOURCES__MOBILENEXT__START_DATE": "2026-09-01",
        "SOURCES__MOBILENEXT__PAGE_SIZE": str(page_size),
        "SESSIONSYNC__PIPELINES_DIR": str(tmp_path / "pipelines"),
        "SESSIONSYNC__WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
    }.items():
        monkeypatch.setenv(key, value)

"""Mobile Next end to end: sandbox over real sockets, real dlt pipeline, real warehouses."""

from __future__ import annotations

import pytest

from pipelines.run import sync_source
from sandbox.mobilenext import MobileNextApi
from tests.conftest import (
    MEMBER_ORGS,
    assert_equals_truth,
    assert_quiet_run,
    loaded_sessions,
)


def synced(destination: str = "duckdb") -> dict:
    result = sync_source("mobilenext", destination)
    assert result.ok, result.error
    return result.rows


@pytest.mark.parametrize("destination", ["duckdb", "parquet"])
def test_initial_sync_equals_truth(mobilenext: MobileNextApi, destination: str) -> None:
    rows = synced(destination)
    loaded = assert_equals_truth(mobilenext, destination)
    assert rows["sessions"] == len(loaded) > 1000
    assert {r["organization"] for r in loaded.values()} == set(MEMBER_ORGS)


@pytest.mark.parametrize("destination", ["duckdb", "parquet"])
def test_incremental_after_clock_advance(mobilenext: MobileNextApi, destination: str) -> None:
    synced(destination)
    before = loaded_sessions(destination)
    unreleased = {i for i, r in before.items() if r["released_at"] is None}
    assert unreleased, "no open sessions: releases would not be exercised"

    mobilenext.advance(25 * 3600)  # new sessions, every open one released, deletions
    rows = synced(destination)

    loaded = assert_equals_truth(mobilenext, destination)
    still_live = [i for i in unreleased if loaded[i]["deleted_at"] is None]
    assert all(loaded[i]["released_at"] is not None for i in still_live)
    deleted = {i for i, r in loaded.items() if r["deleted_at"] is not None}
    assert deleted, "the clock deleted sessions; they must be marked, not left live"
    assert deleted <= before.keys()
    assert rows["sessions"] < len(loaded) / 2, "an incremental run must not reload history"


def test_window_deletion_marked_without_full_scan(mobilenext: MobileNextApi) -> None:
    synced()
    org = mobilenext.orgs["org_acme"]
    recent = org.ids[-1]
    mobilenext.delete_session("org_acme", recent)
    mobilenext.advance(600)
    synced()
    row = loaded_sessions()[recent]
    assert row["deleted_at"] is not None
    assert row["device__platform"] in ("ios", "android"), "the deleted row keeps its data"


def test_old_deletion_found_by_reconcile_scan(mobilenext: MobileNextApi) -> None:
    synced()
    old = mobilenext.orgs["org_beta"].ids[5]  # days old, outside the incremental window
    mobilenext.delete_session("org_beta", old)
    mobilenext.advance(3600)
    synced()
    assert loaded_sessions()[old]["deleted_at"] is None  # not yet: outside the window
    mobilenext.advance(24 * 3600)  # the daily reconcile scan is due
    synced()
    assert loaded_sessions()[old]["deleted_at"] is not None
    assert_equals_truth(mobilenext)


def test_noop_sync_makes_one_list_request_per_org_and_loads_nothing(
        mobilenext: MobileNextApi) -> None:
    synced()
    before = loaded_sessions()
    assert_quiet_run(mobilenext, "mobilenext")
    assert mobilenext.count("/api/v1/sessions") == len(MEMBER_ORGS)
    assert mobilenext.count("/api/v1/organizations") == 1
    assert loaded_sessions() == before


def test_parquet_warehouse_equals_duckdb(mobilenext: MobileNextApi) -> None:
    synced("duckdb")
    synced("parquet")
    mobilenext.advance(25 * 3600)
    synced("duckdb")
    synced("parquet")
    assert loaded_sessions("parquet") == loaded_sessions("duckdb")

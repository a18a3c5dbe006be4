"""Mobile Next while time passes during a run: the server clock moves with every request,
so sessions are created and released while organizations are being paged. Every checkpoint
must come from a response that precedes the reads it covers."""

from __future__ import annotations

from typing import Any, Iterator, List

import pytest

from pipelines.run import sync_source
from sandbox.core import parse_iso_ms
from sandbox.mobilenext import MobileNextApi
from sandbox.serve import START
from sources.timeutil import epoch_ms, parse_ts
from tests.conftest import assert_equals_truth, pipeline_state


@pytest.fixture
def mobilenext_api() -> Iterator[MobileNextApi]:
    """A busy world without deletions: what a quiet incremental run must match exactly."""
    yield MobileNextApi(parse_iso_ms(START), seed=13, sessions_per_day=300, history_days=3,
                        deletions_per_day=0)


def test_sessions_created_and_released_during_scans_are_all_loaded(
        mobilenext: MobileNextApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__MOBILENEXT__PAGE_SIZE", "25")
    mobilenext.faults.update(tick_seconds=1800)  # up to 30 minutes pass per request
    first_page: List[int] = []

    def note_first_page(request: Any) -> None:
        if request.path == "/api/v1/sessions" and not first_page:
            first_page.append(mobilenext.now_ms)  # before this request's own tick
    mobilenext.before_request = note_first_page
    for _ in range(4):
        before = dict(mobilenext.injected)
        result = sync_source("mobilenext")
        assert result.ok, result.error
        assert mobilenext.injected == before
        if first_page:
            # the reconcile time stored is no later than the first page it covers
            reconciled = [parse_ts(s["reconciled_at"]) for s in
                          pipeline_state()["mobilenext"]["resources"]["sessions"]["orgs"]
                          .values()]
            assert all(epoch_ms(r) <= first_page[0] for r in reconciled)
            mobilenext.before_request = None
        mobilenext.advance(3600)
    scanned = mobilenext.now_ms - parse_iso_ms(START)
    assert scanned > 8 * 3_600_000, "too little time passed during the runs"
    mobilenext.faults.update(tick_seconds=0)
    mobilenext.reset_stats()
    assert sync_source("mobilenext").ok  # quiet, and incremental: no reconcile is due
    assert mobilenext.count("/api/v1/sessions") < 60
    assert_equals_truth(mobilenext)

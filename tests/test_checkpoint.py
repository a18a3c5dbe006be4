"""Unit tests of `sources.checkpoint.advance`: a checkpoint moves with data, or once it is
`MAX_AGE` behind, so a quiet run changes no state (and so writes no load package)."""

from __future__ import annotations

from typing import Any, Dict

from sources.checkpoint import MAX_AGE, advance

T0 = "2026-11-02T10:00:00+00:00"


def test_an_unset_checkpoint_is_set_even_by_a_quiet_run() -> None:
    state: Dict[str, Any] = {}
    assert advance(state, "newest", T0, wrote=False)
    assert state == {"newest": T0}


def test_a_run_that_wrote_rows_moves_it_however_little_time_passed() -> None:
    state = {"newest": T0}
    assert advance(state, "newest", "2026-11-02T10:00:01+00:00", wrote=True)
    assert state == {"newest": "2026-11-02T10:00:01+00:00"}


def test_a_quiet_run_leaves_it_while_it_is_less_than_max_age_behind() -> None:
    state = {"newest": T0}
    just_short = "2026-11-02T10:59:59.999000+00:00"
    assert MAX_AGE.total_seconds() == 3600
    assert not advance(state, "newest", just_short, wrote=False)
    assert state == {"newest": T0}, "a quiet run changed state: it would write a package"


def test_a_quiet_run_moves_it_once_it_is_max_age_behind() -> None:
    state = {"newest": T0, "other": "kept"}
    assert advance(state, "newest", "2026-11-02T11:00:00Z", wrote=False)
    assert state == {"newest": "2026-11-02T11:00:00Z", "other": "kept"}


def test_offsets_are_compared_as_instants_not_as_text() -> None:
    state = {"newest": T0}
    # 10:30 at +00:00 is 11:30 at +01:00: half an hour later, not an hour and a half
    assert not advance(state, "newest", "2026-11-02T11:30:00+01:00", wrote=False)
    assert advance(state, "newest", "2026-11-02T12:00:00+01:00", wrote=False)

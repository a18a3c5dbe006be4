"""Moving a time checkpoint in dlt state without turning quiet runs into loads.

dlt commits state in a load package, so a checkpoint that moved on every run would make a run
that found nothing new write a package anyway. A checkpoint here moves when the run wrote
rows under it (a package is written then regardless), or once it is `MAX_AGE` behind. A
quiet run therefore changes no state and writes nothing; the window it re-reads (which
starts at the checkpoint) grows by at most `MAX_AGE`, and reading more never loses data.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Dict

from sources.timeutil import parse_ts

MAX_AGE = timedelta(hours=1)


def advance(state: Dict[str, Any], key: str, new: str, wrote: bool) -> bool:
    """Set `state[key]` to the ISO time `new` if rows were written under it, or it is unset,
    or it is at least `MAX_AGE` older than `new`; True when it moved (state that goes with
    the checkpoint may then move too)."""
    old = state.get(key)
    if wrote or old is None or parse_ts(new) - parse_ts(old) >= MAX_AGE:
        state[key] = new
        return True
    return False

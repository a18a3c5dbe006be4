"""The sources sessionsync knows, by name: each one's `SourceSpec` (`sources/<name>/spec.py`).

Reading the specs imports neither dlt nor any source; a source is imported when a run needs
its dlt source function (`source_factory`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from sources.errors import SyncError
from sources.spec import SourceSpec, all_specs

SOURCES: Dict[str, SourceSpec] = all_specs(
    ("mobilenext", "session_services", "tagbase", "sessionvision"))


def spec(name: str) -> SourceSpec:
    """The spec of the source registered as `name`."""
    if name not in SOURCES:
        raise SyncError(f"unknown source {name!r}; known sources: {', '.join(SOURCES)}")
    return SOURCES[name]


def source_factory(name: str) -> Callable[..., Any]:
    """The dlt source function registered as `name`."""
    return spec(name).load()

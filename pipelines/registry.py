"""The sources sessionsync knows, by name, imported only when used."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict

from sources.errors import SyncError

SOURCES: Dict[str, str] = {
    "mobilenext": "sources.mobilenext:mobilenext_source",
    "session_services": "sources.session_services:session_services_source",
    "tagbase": "sources.tagbase:tagbase_source",
    "sessionvision": "sources.sessionvision:sessionvision_source",
}

# Per source and resource, the column holding each record's own time: its maximum is the
# resource's high-water mark in the run log, and `status` measures lag from it.
HIGH_WATER: Dict[str, Dict[str, str]] = {
    "mobilenext": {"sessions": "created_at"},
    "session_services": {"orders": "created_at", "tickets": "updated_at"},
    "tagbase": {"verifications": "inserted_at"},
    "sessionvision": {"events": "timestamp", "sessions": "end_time"},
}


def source_factory(name: str) -> Callable[..., Any]:
    """The dlt source function registered as `name`."""
    if name not in SOURCES:
        raise SyncError(f"unknown source {name!r}; known sources: {', '.join(SOURCES)}")
    module, attr = SOURCES[name].split(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]

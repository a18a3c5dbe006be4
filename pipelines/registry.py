"""The sources sessionsync knows, by name, imported only when used."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict

from sources.http import SyncError

SOURCES: Dict[str, str] = {
    "mobilenext": "sources.mobilenext:mobilenext_source",
    "session_services": "sources.session_services:session_services_source",
    "tagbase": "sources.tagbase:tagbase_source",
    "sessionvision": "sources.sessionvision:sessionvision_source",
}


def source_factory(name: str) -> Callable[..., Any]:
    """The dlt source function registered as `name`."""
    if name not in SOURCES:
        raise SyncError(f"unknown source {name!r}; known sources: {', '.join(SOURCES)}")
    module, attr = SOURCES[name].split(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]

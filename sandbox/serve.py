"""Start the simulated APIs and say how to point sessionsync at them."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Dict, List, Optional

from sandbox.core import Served, parse_iso_ms
from sandbox.mobilenext import DEMO_KEY, MobileNextApi
from sandbox.session_services import TENANTS, SessionServicesApi, token_for
from sandbox.sessionvision import DEMO_TOKEN, PROJECTS, SessionVisionApi
from sandbox.tagbase import DEMO_KEY as TAGBASE_KEY
from sandbox.tagbase import TagbaseApi

START = "2026-11-01T00:00:00Z"  # the sandbox clock's starting time
DEMO_START_DATE = "2026-09-01"  # older than every sandbox record
# fixed ports of `sessionsync sandbox`
PORTS = {"session_services": 8401, "mobilenext": 8402, "tagbase": 8403, "sessionvision": 8404}
TAGBASE_LOG = Path("var/sandbox/tagbase-log")  # the simulated integration's verification log


def build_apis() -> Dict[str, object]:
    """Every simulated API, seeded and at the sandbox start time."""
    start = parse_iso_ms(START)
    shutil.rmtree(TAGBASE_LOG, ignore_errors=True)  # the same seed writes the same log again
    return {"mobilenext": MobileNextApi(start), "session_services": SessionServicesApi(start),
            "tagbase": TagbaseApi(start, TAGBASE_LOG), "sessionvision": SessionVisionApi(start)}


def serve_all(fixed_ports: bool = False,
              apis: Optional[Dict[str, object]] = None) -> Dict[str, Served]:
    """Start a server per API on 127.0.0.1 (fixed ports, or free ones)."""
    apis = apis or build_apis()
    return {name: Served(api, PORTS[name] if fixed_ports else 0).start()  # type: ignore[arg-type]
            for name, api in apis.items()}


def demo_env(urls: Dict[str, str]) -> Dict[str, str]:
    """Environment variables that point every source at the sandbox with demo credentials."""
    return {
        "SOURCES__MOBILENEXT__BASE_URL": urls["mobilenext"],
        "SOURCES__MOBILENEXT__API_KEY": DEMO_KEY,
        "SOURCES__MOBILENEXT__ORGANIZATION_IDS": "[]",
        "SOURCES__MOBILENEXT__START_DATE": DEMO_START_DATE,
        "SOURCES__SESSION_SERVICES__BASE_URL": urls["session_services"],
        "SOURCES__SESSION_SERVICES__TENANT_TOKENS": json.dumps(
            {t: token_for(t) for t in TENANTS}),
        "SOURCES__SESSION_SERVICES__START_DATE": DEMO_START_DATE,
        "SOURCES__TAGBASE__BASE_URL": urls["tagbase"],
        "SOURCES__TAGBASE__API_KEY": TAGBASE_KEY,
        "SOURCES__TAGBASE__VERIFICATION_LOG_URL": str(TAGBASE_LOG.resolve()),
        "SOURCES__SESSIONVISION__BASE_URL": urls["sessionvision"],
        "SOURCES__SESSIONVISION__API_TOKEN": DEMO_TOKEN,
        "SOURCES__SESSIONVISION__PROJECT_IDS": json.dumps(list(PROJECTS)),
        "SOURCES__SESSIONVISION__START_DATE": DEMO_START_DATE,
    }


def export_lines(urls: Dict[str, str]) -> List[str]:
    """`demo_env` as shell `export` lines, each value single-quoted for pasting or sourcing."""
    return [f"export {key}={shlex.quote(value)}" for key, value in demo_env(urls).items()]

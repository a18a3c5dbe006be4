"""Alerts: a JSON POST to `[alerts] webhook_url` when a run fails or partly fails, and when
`status` finds a resource staler than its `max_lag`.

Each alert is posted on a thread of its own, retried with exponential backoff up to
`[alerts] max_attempts`; it never fails or blocks a sync. A command that ends right after a
sync waits for alerts in flight with `flush`, bounded. The body holds the source, resource,
status, the one-line (redacted) error, lag and run id, never a secret; the webhook URL itself
(which may carry a token) is never logged.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any, Dict, List, Optional

import httpx

from pipelines import settings

log = logging.getLogger("sessionsync")
BACKOFF_BASE, BACKOFF_MAX = 0.5, 30.0
_pending: List[threading.Thread] = []


def alert(kind: str, source: str, resource: str, status: str, error: Optional[str] = None,
          lag_seconds: Optional[float] = None, run_id: Optional[str] = None) -> None:
    """Post one alert in the background, if a webhook is set; returns at once."""
    url = str(settings.get("alerts.webhook_url") or "")
    if not url:
        return
    body = {"kind": kind, "source": source, "resource": resource, "status": status,
            "error": error, "lag_seconds": lag_seconds, "run_id": run_id,
            "at": datetime.now(UTC).isoformat()}
    thread = threading.Thread(target=_post, args=(url, body), daemon=True,
                              name=f"alert-{source}-{resource}")
    _pending.append(thread)
    thread.start()


def _post(url: str, body: Dict[str, Any]) -> None:
    attempts = max(1, int(settings.number("alerts.max_attempts")))
    timeout = settings.number("alerts.timeout_seconds")
    host = httpx.URL(url).host
    for attempt in range(attempts):
        try:
            response = httpx.post(url, json=body, timeout=timeout)
            if response.status_code < 300:
                return
            problem = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            problem = type(exc).__name__
        if attempt + 1 < attempts:
            time.sleep(min(BACKOFF_BASE * 2 ** attempt, BACKOFF_MAX))
    log.warning("alert for %s.%s not delivered to %s after %d attempts (%s)",
                body["source"], body["resource"], host, attempts, problem)


def flush(timeout: float = 60.0) -> None:
    """Wait for alerts in flight, at most `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    while _pending:
        _pending.pop().join(max(0.0, deadline - time.monotonic()))

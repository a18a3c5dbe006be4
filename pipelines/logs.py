"""Logging an operator can keep: at INFO one line per run and per resource, warnings and
errors; every HTTP request, retry and scheduler step only at DEBUG (`--verbose`)."""

from __future__ import annotations

import logging

# Loggers that speak per request or per job step: DEBUG detail, not an operator's journal.
CHATTY = ("httpx", "httpcore", "sessionsync.http", "apscheduler", "dlt")


def setup(verbose: bool = False, level: int = logging.WARNING, timestamps: bool = False) -> None:
    """Configure the root logger for a command: `level` normally, DEBUG when `verbose`."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if timestamps else "%(message)s"
    logging.basicConfig(level=logging.DEBUG if verbose else level, format=fmt, force=True)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)

"""One DuckDB warehouse file shared by many sources, processes and readers.

DuckDB lets one process at a time open a file for writing, and none while a writer holds it.
So every sessionsync process that opens a DuckDB warehouse takes the warehouse's `flock`
(`<pipelines dir>/warehouse.lock`) first: exclusive to write (a sync, a reset), shared to read
(`status`). A process that finds it busy waits, saying so once on stderr, up to
`[sessionsync] warehouse_wait_seconds`, then runs; past that it fails with one line naming
the setting. A program outside sessionsync holding the file open (a BI tool on the warehouse
itself) is waited for the same way. BI tools should open the read-only copy instead
(`pipelines.bi_copy`), which no sync ever holds.

The per-source write lock (`pipelines.lock`) is taken before this one and is never waited
for: the same source twice is still refused at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Iterator, Optional

import duckdb

from pipelines import settings
from pipelines.warehouse import Location, held_open, pipelines_dir
from sources.errors import SyncError

log = logging.getLogger("sessionsync")
WAIT_KEY = "sessionsync.warehouse_wait_seconds"
POLL_SECONDS = 0.2


@contextmanager
def warehouse_access(who: str, destination: str, location: Location, exclusive: bool = True,
                     wait_seconds: Optional[float] = None,
                     hold_open: bool = False) -> Iterator[None]:
    """Hold the warehouse for the block: waits while another process uses it.

    Args:
        who: what is waiting, for the message (a source name or a command).
        destination: only `duckdb` is shared this way; others pass straight through.
        location: the warehouse file.
        exclusive: write (True) or read (False).
        wait_seconds: the bound; default `[sessionsync] warehouse_wait_seconds`.
        hold_open: with `exclusive`, keep the DuckDB file open for the block
            (`pipelines.warehouse.held_open`), for a sync that connects many times.
    """
    if destination != "duckdb":
        yield
        return
    assert isinstance(location, Path)
    bound = settings.number(WAIT_KEY) if wait_seconds is None else wait_seconds
    deadline = time.monotonic() + bound
    folder = pipelines_dir(destination, location)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "warehouse.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _take(fd, who, location, exclusive, bound, deadline)
        if exclusive:
            os.ftruncate(fd, 0)
            command = " ".join(os.path.basename(a) for a in sys.argv[:3])
            os.pwrite(fd, f"pid {os.getpid()}, {command!r}, since "
                          f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z".encode(), 0)
        con = _wait_openable(who, location, exclusive, bound, deadline)
        if con is not None and hold_open and exclusive:
            with held_open(location, con):
                yield
        else:
            if con is not None:
                con.close()
            yield
    finally:
        if exclusive:
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the flock


def _take(fd: int, who: str, location: Path, exclusive: bool, bound: float,
          deadline: float) -> None:
    said = False
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            if said:
                log.warning("%s: warehouse free, going on", who)
            return
        except BlockingIOError:
            if not said:
                holder = os.pread(fd, 500, 0).decode(errors="replace").strip() or "a reader"
                log.warning("%s: warehouse %s is busy (%s); waiting up to %.0fs", who,
                            location, holder, bound)
                said = True
            if time.monotonic() >= deadline:
                raise _gave_up(who, location, bound) from None
            time.sleep(POLL_SECONDS)


def _wait_openable(who: str, location: Path, exclusive: bool, bound: float,
                   deadline: float) -> Optional[duckdb.DuckDBPyConnection]:
    """Wait while a program outside sessionsync holds the DuckDB file open; the connection
    that opened it (the caller closes it), or None when there is no file yet."""
    if not location.exists():
        return None
    said = False
    while True:
        try:
            return duckdb.connect(str(location), read_only=not exclusive)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if not said:
                log.warning("%s: warehouse %s is held open by another program (%s); waiting "
                            "up to %.0fs. BI tools should open the read-only copy instead.",
                            who, location, _holder(str(exc)), bound)
                said = True
            if time.monotonic() >= deadline:
                raise _gave_up(who, location, bound) from None
            time.sleep(POLL_SECONDS)


def _holder(message: str) -> str:
    """The 'PID n' part of DuckDB's lock conflict message, if any."""
    marker = "(PID "
    start = message.find(marker)
    return "pid " + message[start + len(marker):].split(")")[0] if start >= 0 else "unknown"


def _gave_up(who: str, location: Path, bound: float) -> SyncError:
    return SyncError(f"{who}: warehouse {location} stayed busy for {bound:.0f}s; gave up. "
                     f"Set {settings.where(WAIT_KEY)} to wait longer")

"""One writer per source and warehouse, across `sync`, `backfill`, `schedule` and processes.

The lock is an advisory `flock` on `<pipelines dir>/<source>.lock`. The kernel releases it
when its holder exits, however it exits, so a lock left by a killed process is simply free:
the next writer takes it and says whose it was. The file holds the holder's pid, command and
start time for the refusal message.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Iterator

from sources.http import SyncError

log = logging.getLogger("sessionsync")
LOCKED_EXIT_CODE = 75  # EX_TEMPFAIL: another writer is running; try again later


class LockedError(SyncError):
    """Another sessionsync process is writing this source into this warehouse."""


@contextmanager
def source_lock(source: str, folder: Path) -> Iterator[None]:
    """Hold the write lock of `source` for the block, or raise `LockedError` at once."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{source}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 500, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(f"{source}: another sessionsync run is writing this source "
                              f"({holder}); not starting a second writer") from None
        previous = os.pread(fd, 500, 0).decode(errors="replace").strip()
        if previous:
            log.warning("%s: taking over a lock its holder left behind (%s)", source, previous)
        os.ftruncate(fd, 0)
        command = " ".join(os.path.basename(a) for a in sys.argv[:3])
        os.pwrite(fd, f"pid {os.getpid()}, {command!r}, since "
                      f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

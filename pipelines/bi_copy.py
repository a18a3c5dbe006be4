"""A read-only copy of the DuckDB warehouse for BI tools, published after each sync.

DuckDB refuses to open a file another process writes, and a reader holding the warehouse
open blocks syncs. So after each sync that loaded or logged something, under the exclusive
warehouse lock, sessionsync checkpoints the warehouse, copies it to a temporary file beside
it and renames that over `<name>.bi.duckdb` (for `warehouse/sessionsync.duckdb`:
`warehouse/sessionsync.bi.duckdb`). The rename is atomic: a BI tool opening the copy sees the
previous sync's state or this one's, never a half-written file, and one holding it open keeps
reading the copy it opened (the old file lives on until it closes) while syncs go on.
`[sessionsync] bi_copy = false` turns it off.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import duckdb

from pipelines import settings

log = logging.getLogger("sessionsync")


def bi_path(location: Path) -> Path:
    """Where the BI copy of a DuckDB warehouse goes: `<stem>.bi<suffix>` beside it."""
    return location.with_name(f"{location.stem}.bi{location.suffix or '.duckdb'}")


def publish(location: Path) -> None:
    """Copy the warehouse to its BI copy and rename it into place; the caller holds the
    warehouse exclusively. A failure is logged, never raised: the sync's outcome stands."""
    if not settings.flag("sessionsync.bi_copy") or not location.exists():
        return
    target = bi_path(location)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with duckdb.connect(str(location)) as con:
            con.execute("CHECKPOINT")  # everything in the file itself, none in the WAL
        shutil.copyfile(location, temporary)
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not publish the BI copy %s: %s", target,
                    " ".join(str(exc).split())[:200])
        temporary.unlink(missing_ok=True)

"""Handing memory a finished run freed back to the system.

A run's C allocations (delta-rs' Parquet and Delta writes, DuckDB's read-backs through
`delta_scan`, Arrow buffers on the system allocator, dlt's normalizer) are freed when it ends,
but glibc's malloc keeps freed memory in its arenas (one per thread that allocated) instead
of returning it: a Delta backfill of 300k events held 160 MB of freed, unused heap after its
third run, and more after each (`bench.memory_phases` prints it). `release()` asks malloc to
return it (`malloc_trim`), so what a process holds between runs does not grow with them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Optional


@functools.lru_cache(maxsize=1)
def _glibc() -> Optional[ctypes.CDLL]:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim this way
        return None


def release() -> None:
    """Return freed heap memory to the system (glibc only; elsewhere nothing to do)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)

"""Make DuckDB able to read Delta tables with no network.

DuckDB's `delta` extension is normally downloaded on first use; the `duckdb-ext-delta` wheel
ships the build for our pinned DuckDB, which we install once from its local path.
"""

from __future__ import annotations

import functools
from pathlib import Path

import duckdb


@functools.lru_cache(maxsize=1)
def ensure_delta_extension() -> None:
    """Install the wheel's delta extension into DuckDB's extension directory (idempotent)."""
    import duckdb_ext  # the duckdb-ext-delta wheel: a namespace package holding the binaries

    root = Path(next(iter(duckdb_ext.__path__))) / "extensions" / f"v{duckdb.__version__}"
    found = sorted(root.glob("*/delta.duckdb_extension"))
    if not found:
        raise RuntimeError(f"no delta extension for DuckDB {duckdb.__version__} in {root}")
    with duckdb.connect() as con:
        con.execute(f"INSTALL '{found[0]}'")

"""DuckDB extensions from the `duckdb-ext-*` wheels, installed with no network.

DuckDB downloads extensions on first use; the `duckdb-ext-delta`, `duckdb-ext-httpfs` and
`duckdb-ext-postgres` wheels ship the builds for our pinned DuckDB instead, which we install
once from their local paths. dlt's `pipeline.dataset()` over a filesystem (Delta) warehouse
loads `delta` and `httpfs` by name, so both must be installed before it runs: the sources'
read-backs (`sources.loaded`) need that as much as the runner's warehouse connections do.
"""

from __future__ import annotations

import functools
from pathlib import Path

import duckdb


@functools.cache
def install_extension(name: str) -> None:
    """Install the wheel's build of extension `name` into DuckDB's extension folder, once."""
    import duckdb_ext  # namespace package of the duckdb-ext-* wheels

    for folder in duckdb_ext.__path__:
        root = Path(folder) / "extensions" / f"v{duckdb.__version__}"
        found = sorted(root.glob(f"*/{name}.duckdb_extension"))
        if found:
            with duckdb.connect() as con:
                con.execute(f"INSTALL '{found[0]}'")
            return
    raise RuntimeError(f"no {name} extension for DuckDB {duckdb.__version__}; "
                       f"install the duckdb-ext-* wheel pinned in pyproject.toml")


def ensure_delta_extension() -> None:
    """Install the wheels' delta and httpfs extensions into DuckDB's extension directory."""
    install_extension("delta")
    install_extension("httpfs")

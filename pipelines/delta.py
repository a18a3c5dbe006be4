"""Make DuckDB able to read Delta tables, local or on object storage, with no network.

DuckDB's `delta` and `httpfs` extensions are normally downloaded on first use; the
`duckdb-ext-delta` and `duckdb-ext-httpfs` wheels ship the builds for our pinned DuckDB,
which we install once from their local paths. dlt's `pipeline.dataset()` over a filesystem
warehouse loads both by name, so both must be installed before it runs.
"""

from __future__ import annotations

from pipelines.remote import install_extension


def ensure_delta_extension() -> None:
    """Install the wheels' delta and httpfs extensions into DuckDB's extension directory."""
    install_extension("delta")
    install_extension("httpfs")

"""The demo: sandbox APIs up, every implemented source synced into DuckDB, a BI query shown."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import List, Optional, Tuple

from pipelines import sharing
from pipelines.run import SyncResult, sync
from pipelines.warehouse import connect, resolve_location, row_counts
from sandbox.serve import demo_env, serve_all

BI_QUERY = """
SELECT device__platform AS platform,
       count(*) AS sessions,
       round(median(epoch(released_at - created_at)) / 60, 1) AS median_minutes_held
FROM mobilenext.sessions
WHERE deleted_at IS NULL AND released_at IS NOT NULL
GROUP BY 1 ORDER BY 1
""".strip()


def run_demo(warehouse: Optional[str] = None) -> Tuple[List[SyncResult], dict, List[tuple], float]:
    """Serve the sandbox, sync into DuckDB, return results, row counts, BI rows and seconds."""
    started = time.perf_counter()
    servers = serve_all()
    try:
        os.environ.update(demo_env({n: s.url for n, s in servers.items()}))
        results = sync(list(servers), "duckdb", warehouse)
    finally:
        for server in servers.values():
            server.stop()
    location = Path(resolve_location("duckdb", warehouse))
    counts, bi_rows = {}, []
    if location.exists():
        with sharing.warehouse_access("demo", "duckdb", location, exclusive=False), \
                connect("duckdb", location) as con:
            counts = row_counts(con)
            bi_rows = con.execute(BI_QUERY).fetchall() if counts else []
    return results, counts, bi_rows, time.perf_counter() - started

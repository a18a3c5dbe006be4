"""No-op incremental syncs: requests, load packages and wall time including process start.

    .venv/bin/python -m bench.noop

Serves the demo sandbox, runs `sessionsync sync <source>` once per source to load it, then
again with nothing changed upstream, each as the CLI process a scheduler would start. For the
second run it prints the wall time of the whole process, the requests the sandbox answered
per path, and the load packages dlt wrote (its `_dlt_loads` rows before and after).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from typing import Dict

import duckdb

from bench.common import warehouse_env
from sandbox.serve import demo_env, serve_all


def loads(warehouse: str, source: str) -> int:
    with duckdb.connect(warehouse, read_only=True) as con:
        return int(con.execute(f"SELECT count(*) FROM {source}._dlt_loads").fetchall()[0][0])


def cli_sync(source: str, env: Dict[str, str]) -> float:
    """Wall seconds of one `sessionsync sync <source>` process."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipelines.cli", "sync", source], env=env,
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    tmp = tempfile.mkdtemp()
    servers = serve_all()
    env = dict(os.environ, **warehouse_env(tmp),
               **demo_env({n: s.url for n, s in servers.items()}), RUNTIME__LOG_LEVEL="WARNING")
    warehouse = env["SESSIONSYNC__WAREHOUSE"]
    print(f"{'source':<18}{'first s':>8}{'no-op s':>9}{'requests':>10}{'packages':>10}"
          "  requests by path")
    try:
        for source, served in servers.items():
            first = cli_sync(source, env)
            before = loads(warehouse, source)
            served.api.reset_stats()  # type: ignore[attr-defined]
            wall = cli_sync(source, env)
            by_path = served.api.count_by_path()  # type: ignore[attr-defined]
            written = loads(warehouse, source) - before
            print(f"{source:<18}{first:>8.2f}{wall:>9.2f}{sum(by_path.values()):>10}"
                  f"{written:>10}  {dict(sorted(by_path.items()))}", flush=True)
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()

"""Seconds per run of a sessionvision backfill, per phase, in one process.

    .venv/bin/python -m bench.run_phases --events 1000000
    .venv/bin/python -m bench.run_phases --events 1000000 --chunk 41d

Serves a world as `bench.whole` does and runs `pipelines.backfill.backfill` over the same
31-day window (default chunking unless `--chunk`). After each run it prints the run's rows,
API pages and wall seconds, the seconds spent in dlt's extract, normalize and load, in the
run log (its append and the high-water marks) and in the warehouse checks outside dlt, and
the DuckDB statements that took longest in the load. It answers "where does a run's time
go", which `bench.whole` (whole process, one number) does not.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional

from bench.compare import WINDOW, _source_env
from bench.whole import serve, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--destination", default="duckdb", choices=["duckdb", "parquet"])
    parser.add_argument("--chunk", default=None)
    args = parser.parse_args()
    server, url = serve(args.events)
    tmp = tempfile.mkdtemp()
    os.environ.update(SESSIONSYNC__PIPELINES_DIR=f"{tmp}/pipelines",
                      SESSIONSYNC__WAREHOUSE=f"{tmp}/w.duckdb",
                      SESSIONSYNC__FILE_WAREHOUSE=f"{tmp}/files", RUNTIME__LOG_LEVEL="WARNING",
                      **_source_env("sessionvision", url))
    import dlt
    from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient

    import pipelines.backfill as backfill
    from pipelines import run, runlog

    spent: Dict[str, float] = {}
    statements: Dict[str, float] = {}

    def timed(owner: Any, name: str, label: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t0
        setattr(owner, name, wrapper)

    for step in ("extract", "normalize", "load"):
        timed(dlt.Pipeline, step, step)
    timed(runlog, "write", "run log")
    timed(runlog, "high_water_marks", "run log")
    timed(run, "_in_warehouse", "checks")
    timed(backfill, "_completed", "checks")
    timed(backfill, "publish_bi_copy", "BI copy")
    execute = DuckDbSqlClient.execute_query

    @contextmanager
    def execute_query(self: Any, query: Any, *a: Any, **k: Any) -> Iterator[Any]:
        t0 = time.perf_counter()
        with execute(self, query, *a, **k) as cursor:
            key = " ".join(str(query).split())[:70]
            statements[key] = statements.get(key, 0.0) + time.perf_counter() - t0
            yield cursor
    DuckDbSqlClient.execute_query = execute_query  # type: ignore[method-assign]

    last = [time.perf_counter()]

    def on_chunk(done: int, total: int, chunk: Any, result: Optional[Any]) -> None:
        if result is None:
            return
        now = time.perf_counter()
        phases = " ".join(f"{k} {v:.2f}" for k, v in sorted(spent.items()))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"{done:>3}/{total} {chunk.start:%m-%d}..{chunk.end:%m-%d} "
              f"rows {sum(result.rows.values()):>8} pages {result.pages:>5} "
              f"wall {now - last[0]:6.2f}  {phases}  peak {rss} MB", flush=True)
        for key, seconds in sorted(statements.items(), key=lambda kv: -kv[1])[:3]:
            print(f"{'':>12}{seconds:6.2f} {key}", flush=True)
        spent.clear()
        statements.clear()
        last[0] = now

    t0 = time.perf_counter()
    try:
        result = backfill.backfill("sessionvision", WINDOW[0], WINDOW[1], args.chunk, None,
                                   args.destination, on_chunk=on_chunk)
        after = " ".join(f"{k} {v:.2f}" for k, v in sorted(spent.items()))
        print(f"after the runs: {after}")  # the backfill's run log append, the BI copy
        print(f"total {time.perf_counter() - t0:.2f} s, ok {result.ok}, {result.rows}, "
              f"load average {os.getloadavg()[0]:.1f}")
    finally:
        stop(server)


if __name__ == "__main__":
    main()

"""sessionvision backfill rows/s into DuckDB, Postgres and Delta on a local S3 server.

    .venv/bin/python -m bench.warehouses --events 200000

The same sandbox world is backfilled (one chunk per 10 days, events only) into each
warehouse in turn: a DuckDB file, a Postgres server started from the `pgserver` wheel
(tests/servers.py, on 127.0.0.1 with password auth) and Delta tables on moto's S3-compatible
server (also 127.0.0.1, a process of its own). The sandbox serves from this process, so the
numbers include serving; they compare warehouses, not absolute API speed.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Dict

from sandbox.core import Served, iso_ms, parse_iso_ms
from sandbox.serve import START
from sandbox.sessionvision import DEMO_TOKEN, PROJECTS, SessionVisionApi
from tests.servers import start_postgres, start_s3


def backfill_into(destination: str, env: Dict[str, str], days: int) -> float:
    """Seconds to backfill `days` of events into a fresh warehouse."""
    from pipelines.backfill import backfill

    os.environ.update(env)
    end = parse_iso_ms(START)
    started = time.perf_counter()
    result = backfill("sessionvision", iso_ms(end - days * 86_400_000), iso_ms(end), "10d",
                      ["events"], destination)
    seconds = time.perf_counter() - started
    assert result.ok, result.error
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    days = 30
    api = SessionVisionApi(parse_iso_ms(START), seed=5, history_days=days,
                           visits_per_day=args.events / days / 1.5 / 6.6)
    events = sum(len(api.projects[p].events) for p in PROJECTS)
    postgres, s3 = start_postgres(), start_s3()
    print(f"sandbox: {events} events; postgres started in {postgres.started_seconds:.1f}s")
    try:
        with tempfile.TemporaryDirectory() as tmp, Served(api) as served:
            base = {"SOURCES__SESSIONVISION__BASE_URL": served.url,
                    "SOURCES__SESSIONVISION__API_TOKEN": DEMO_TOKEN,
                    "SOURCES__SESSIONVISION__PROJECT_IDS": json.dumps(list(PROJECTS)),
                    "SESSIONSYNC__PIPELINES_DIR": f"{tmp}/pipelines"}
            postgres.execute("CREATE DATABASE bench")
            cases = {
                "duckdb": ("duckdb", {"SESSIONSYNC__WAREHOUSE": f"{tmp}/w.duckdb"}),
                "postgres": ("postgres", {"DESTINATION__POSTGRES__CREDENTIALS":
                                          postgres.dsn("bench")}),
                "delta on s3": ("parquet", {**s3.settings("bench"),
                                            "SESSIONSYNC__FILE_WAREHOUSE": "s3://bench/w"}),
            }
            for name, (destination, env) in cases.items():
                seconds = backfill_into(destination, {**base, **env}, days + 1)
                print(f"sessionvision backfill -> {name}: {events} events in {seconds:.1f}s "
                      f"= {events / seconds:,.0f} rows/s")
    finally:
        postgres.stop()
        s3.stop()


if __name__ == "__main__":
    main()

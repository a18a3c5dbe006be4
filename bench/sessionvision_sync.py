"""Time an initial sync of N sandbox sessionvision events (two projects); prints rows/s.

    .venv/bin/python -m bench.sessionvision_sync --events 1000000 [--destination duckdb]

Then times a run 15 minutes later and prints its request count.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from bench.common import run_later, timed_sync, warehouse_env
from sandbox.core import Served, parse_iso_ms
from sandbox.serve import START
from sandbox.sessionvision import DEMO_TOKEN, PROJECTS, SessionVisionApi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--destination", default="duckdb", choices=["duckdb", "parquet"])
    args = parser.parse_args()

    days = 30  # a visit has about 6.6 events; the second project gets half the visits
    t0 = time.perf_counter()
    api = SessionVisionApi(parse_iso_ms(START), seed=5, history_days=days,
                           visits_per_day=args.events / days / 1.5 / 6.6)
    events = sum(len(api.projects[p].events) for p in PROJECTS)
    print(f"sandbox: {events} events in {time.perf_counter() - t0:.1f}s")
    with tempfile.TemporaryDirectory() as tmp, Served(api) as served:
        env = {**warehouse_env(tmp),
               "SOURCES__SESSIONVISION__BASE_URL": served.url,
               "SOURCES__SESSIONVISION__API_TOKEN": DEMO_TOKEN,
               "SOURCES__SESSIONVISION__PROJECT_IDS": json.dumps(list(PROJECTS)),
               "SOURCES__SESSIONVISION__START_DATE": "2026-09-01"}
        timing = timed_sync("sessionvision", args.destination, env)
        requests = dict(sorted(api.count_by_path().items()))
        later = run_later(api, "sessionvision", args.destination, env)
    rows = timing.result.rows
    assert rows["events"] == events, (rows, events)
    print(f"sessionvision -> {args.destination}: {rows['events']} events in {timing.wall:.1f}s"
          f" = {rows['events'] / timing.wall:,.0f} events/s; all tables "
          f"{sum(rows.values())} rows; requests {requests} (process CPU {timing.cpu:.1f}s incl."
          f" sandbox, peak RSS {timing.peak_rss_mb:.0f} MB)")
    print(later)


if __name__ == "__main__":
    main()

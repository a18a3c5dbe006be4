"""Time an initial sync of a verification log of N lines, with its sessions and tags by id.

    .venv/bin/python -m bench.tagbase_sync --verifications 100000 [--destination duckdb]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import run_later, timed_sync, warehouse_env
from sandbox.core import Served, parse_iso_ms
from sandbox.serve import START
from sandbox.tagbase import DEMO_KEY, TagbaseApi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verifications", type=int, default=100_000)
    parser.add_argument("--destination", default="duckdb", choices=["duckdb", "parquet"])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=0,
                        help="added to every sandbox response, like a network round trip")
    args = parser.parse_args()

    days = 30  # a scan flow writes about 1.9 verifications
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        api = TagbaseApi(parse_iso_ms(START), Path(tmp) / "log", seed=5, history_days=days,
                         scans_per_day=args.verifications / days / 1.85, rotate_lines=5000)
        files = list(api.log_dir.iterdir())
        print(f"sandbox: {len(api.verifications)} verifications, {len(api.sessions)} sessions, "
              f"{len(api.tags)} tags, {len(files)} log files "
              f"({sum(f.stat().st_size for f in files) / 1e6:.1f} MB) "
              f"in {time.perf_counter() - t0:.1f}s")
        api.faults.update(latency_seconds=args.latency_ms / 1000)
        with Served(api) as served:
            env = {**warehouse_env(tmp),
                   "SOURCES__TAGBASE__BASE_URL": served.url,
                   "SOURCES__TAGBASE__API_KEY": DEMO_KEY,
                   "SOURCES__TAGBASE__VERIFICATION_LOG_URL": str(api.log_dir),
                   "SOURCES__TAGBASE__CONCURRENCY": str(args.concurrency)}
            timing = timed_sync("tagbase", args.destination, env)
            requests = dict(sorted(api.count_by_path().items()))
            total = len(api.verifications)
            later = run_later(api, "tagbase", args.destination, env)
    rows = timing.result.rows
    assert rows["verifications"] == total, (rows, total)
    print(f"tagbase -> {args.destination}: {rows['verifications']} verifications, "
          f"{rows['sessions']} sessions, {rows['tags']} tags in {timing.wall:.1f}s "
          f"= {rows['verifications'] / timing.wall:,.0f} verifications/s; requests {requests} "
          f"(concurrency {args.concurrency}, latency {args.latency_ms:g} ms, "
          f"process CPU {timing.cpu:.1f}s incl. sandbox, "
          f"peak RSS {timing.peak_rss_mb:.0f} MB)")
    print(later)


if __name__ == "__main__":
    main()

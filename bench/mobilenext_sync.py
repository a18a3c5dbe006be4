"""Time a full sync of N sandbox Mobile Next sessions into a warehouse; prints rows/s.

    .venv/bin/python -m bench.mobilenext_sync --sessions 100000 [--destination duckdb]
"""

from __future__ import annotations

import argparse
import tempfile

from bench.common import timed_sync, warehouse_env
from sandbox.core import Served, parse_iso_ms
from sandbox.mobilenext import DEMO_KEY, MobileNextApi
from sandbox.serve import START


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--destination", default="duckdb", choices=["duckdb", "parquet"])
    args = parser.parse_args()

    days = 30
    # org_acme gets 1/(1+0.6) of the sessions; sync only it so N is the row count
    api = MobileNextApi(parse_iso_ms(START), seed=5, sessions_per_day=args.sessions / days,
                        history_days=days, deletions_per_day=0)
    total = len(api.orgs["org_acme"].ids)
    with tempfile.TemporaryDirectory() as tmp, Served(api) as served:
        timing = timed_sync("mobilenext", args.destination, {
            **warehouse_env(tmp),
            "SOURCES__MOBILENEXT__BASE_URL": served.url,
            "SOURCES__MOBILENEXT__API_KEY": DEMO_KEY,
            "SOURCES__MOBILENEXT__ORGANIZATION_IDS": '["org_acme"]',
            "SOURCES__MOBILENEXT__START_DATE": "2026-09-01",
        })
    rows = timing.result.rows["sessions"]
    assert rows == total, (rows, total)
    print(f"mobilenext -> {args.destination}: {rows} sessions in {timing.wall:.1f}s = "
          f"{rows / timing.wall:,.0f} rows/s ({api.count('/api/v1/sessions')} requests, "
          f"process CPU {timing.cpu:.1f}s incl. sandbox, peak RSS {timing.peak_rss_mb:.0f} MB)")


if __name__ == "__main__":
    main()

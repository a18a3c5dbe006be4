"""Time an initial sync of N sandbox Session Services orders (two tenants); prints rows/s.

    .venv/bin/python -m bench.session_services_sync --orders 100000 [--destination duckdb]

Then times a run 15 minutes later (the next scheduled run) and prints its request count.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from bench.common import run_later, timed_sync, warehouse_env
from sandbox.core import Served, parse_iso_ms
from sandbox.serve import START
from sandbox.session_services import TENANTS, SessionServicesApi, token_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--destination", default="duckdb", choices=["duckdb", "parquet"])
    args = parser.parse_args()

    days = 30  # the first tenant gets 2/3 of the orders, the second 1/3
    t0 = time.perf_counter()
    api = SessionServicesApi(parse_iso_ms(START), seed=5, history_days=days,
                             orders_per_day=args.orders / days / 1.35)
    orders = sum(len(t.orders.ids) for t in api.tenants.values())
    tickets = sum(len(t.tickets.ids) for t in api.tenants.values())
    print(f"sandbox: {orders} orders, {tickets} tickets in {time.perf_counter() - t0:.1f}s")
    with tempfile.TemporaryDirectory() as tmp, Served(api) as served:
        env = {
            **warehouse_env(tmp),
            "SOURCES__SESSION_SERVICES__BASE_URL": served.url,
            "SOURCES__SESSION_SERVICES__TENANT_TOKENS": json.dumps(
                {t: token_for(t) for t in TENANTS}),
            "SOURCES__SESSION_SERVICES__START_DATE": "2026-09-01",
        }
        timing = timed_sync("session_services", args.destination, env)
        requests = len(api.requests)
        later = run_later(api, "session_services", args.destination, env)
    rows = timing.result.rows
    assert rows["orders"] == orders, (rows, orders)
    print(f"session_services -> {args.destination}: {rows['orders']} orders in "
          f"{timing.wall:.1f}s = {rows['orders'] / timing.wall:,.0f} orders/s; all tables "
          f"{sum(rows.values())} rows = {sum(rows.values()) / timing.wall:,.0f} rows/s "
          f"({requests} requests, process CPU {timing.cpu:.1f}s incl. sandbox, "
          f"peak RSS {timing.peak_rss_mb:.0f} MB)")
    print(later)


if __name__ == "__main__":
    main()

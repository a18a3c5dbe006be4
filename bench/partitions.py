"""Latency hiding across partitions, and pacing under a rate limit (Mobile Next).

    .venv/bin/python -m bench.partitions --latency-ms 50 --partitions 2 4 8 --rate-limit 40

The sandbox (a process of its own) adds `--latency-ms` to every response and serves k
organizations of equal size. For each k it times a sync of each organization alone and of
all k in one run, each in a fresh process, and prints the ratio of the k-partition time to the
slowest single partition (1.0 = latency fully hidden). Then, with the sandbox limiting to
`--rate-limit` requests/s, it syncs 8 partitions with the client paced at that rate and with
no client limit, and prints the rate sustained over the requests' span and the share of 429s.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

import httpx

from sandbox.core import Served, parse_iso_ms
from sandbox.serve import START

DAYS = 30


def serve(teams: int, per_partition: int) -> None:
    """Serve a Mobile Next world of `teams` equal organizations; prints `READY <url>`."""
    from sandbox.mobilenext import MobileNextApi
    api = MobileNextApi(parse_iso_ms(START), seed=5, sessions_per_day=per_partition / DAYS,
                        history_days=DAYS, deletions_per_day=0, teams=teams)
    gc.freeze()  # the built world is permanent: the collector no longer rescans its records
    with Served(api) as served:
        print("READY", served.url, flush=True)
        sys.stdin.read()


def run_sync(url: str, orgs: List[str], rate: float) -> Dict[str, Any]:
    """One sync of `orgs` into a fresh warehouse, timed after imports (in its own process)."""
    from sandbox.mobilenext import DEMO_KEY
    tmp = tempfile.mkdtemp()
    os.environ.update({"SESSIONSYNC__PIPELINES_DIR": f"{tmp}/pipelines",
                       "SESSIONSYNC__WAREHOUSE": f"{tmp}/w.duckdb",
                       "RUNTIME__LOG_LEVEL": "WARNING",
                       "SOURCES__MOBILENEXT__BASE_URL": url,
                       "SOURCES__MOBILENEXT__API_KEY": DEMO_KEY,
                       "SOURCES__MOBILENEXT__ORGANIZATION_IDS": json.dumps(orgs),
                       "SOURCES__MOBILENEXT__START_DATE": "2020-01-01",
                       "SOURCES__MOBILENEXT__HTTP__REQUESTS_PER_SECOND": str(rate),
                       "SOURCES__MOBILENEXT__HTTP__MAX_RETRIES": "20"})
    from pipelines.run import sync_source
    t0 = time.perf_counter()
    result = sync_source("mobilenext")
    assert result.ok, result.error
    return {"wall": time.perf_counter() - t0, "rows": result.rows.get("sessions", 0)}


class Sandbox:
    """The sandbox process and its control endpoints."""

    def __init__(self, teams: int, per_partition: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.partitions", "serve", str(teams), str(per_partition)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        assert line and line[0] == "READY", line
        self.url = line[1]

    def faults(self, **faults: float) -> None:
        httpx.post(f"{self.url}/_sandbox/faults", json=faults).raise_for_status()

    def sync(self, orgs: List[str], rate: float = 0) -> Dict[str, Any]:
        """Run one sync in a fresh process; its timing plus the sandbox's request counts."""
        httpx.post(f"{self.url}/_sandbox/reset").raise_for_status()
        out = subprocess.run([sys.executable, "-m", "bench.partitions", "sync", self.url,
                              json.dumps(orgs), str(rate)],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"sync of {orgs} failed:\n{out.stderr[-2000:]}")
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        stats = httpx.get(f"{self.url}/_sandbox/stats").json()
        measured.update(requests=stats["requests"], span=stats["span_seconds"],
                        limited=stats["injected"].get("429-limit", 0))
        return measured

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def teams(k: int) -> List[str]:
    return [f"org_team{n:02d}" for n in range(1, k + 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--partitions", type=int, nargs="*", default=[2, 4, 8])
    parser.add_argument("--per-partition", type=int, default=10_000,
                        help="sessions per organization (20 pages of 500)")
    parser.add_argument("--rate-limit", type=float, default=40, help="sandbox limit, req/s")
    args = parser.parse_args()
    most = max(args.partitions + [8])
    sandbox = Sandbox(most, args.per_partition)
    try:
        sandbox.sync(teams(most))  # warm-up: every page rendered once, so no case pays for it
        sandbox.faults(latency_seconds=args.latency_ms / 1000)
        print(f"latency {args.latency_ms:g} ms per request, {args.per_partition} sessions "
              "per organization")
        print(f"{'k':>3}{'slowest single s':>18}{'all k s':>10}{'ratio':>8}{'rows':>9}")
        for k in args.partitions:
            single = max(sandbox.sync([org])["wall"] for org in teams(k))
            together = sandbox.sync(teams(k))
            print(f"{k:>3}{single:>18.2f}{together['wall']:>10.2f}"
                  f"{together['wall'] / single:>8.2f}{together['rows']:>9}", flush=True)
        print()
        print(f"rate limit {args.rate_limit:g} req/s at the sandbox, 8 partitions, latency "
              f"{args.latency_ms:g} ms")
        print(f"{'client pacing':<22}{'requests':>9}{'req/s':>8}{'of limit':>9}{'429s':>6}"
              f"{'429 share':>10}{'wall s':>8}")
        sandbox.faults(latency_seconds=args.latency_ms / 1000, rate_limit=args.rate_limit)
        for label, rate in ((f"{args.rate_limit:g} req/s", args.rate_limit), ("none", 0)):
            m = sandbox.sync(teams(8), rate)
            achieved = m["requests"] / m["span"] if m["span"] else 0.0
            print(f"{label:<22}{m['requests']:>9}{achieved:>8.1f}"
                  f"{achieved / args.rate_limit:>9.2f}{m['limited']:>6}"
                  f"{m['limited'] / m['requests']:>10.1%}{m['wall']:>8.2f}", flush=True)
    finally:
        sandbox.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "sync":
        print(json.dumps(run_sync(sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4]))))
    else:
        main()

"""A first Session Services sync, timed as a user runs it, beside a fetch floor.

    .venv/bin/python -m bench.session_services_sync --orders 100000 [--destination duckdb]

It serves a Session Services world of N orders (two tenants) from a process of its own (as
`bench.whole` does, every page served once before the cases so none pays for rendering), then
runs, each as a fresh process timed from start to exit with its own peak RSS (`wait4`):

- `floor-serial`: an httpx + orjson loop paging, one request after another, what a first sync
  reads (venues, both events lists, each event's admissions, every order, each event's
  tickets, per tenant), parsing each page and storing nothing;
- `floor`: the same requests read the way the sync reads them: every tenant's orders chain at
  once, then the per-event lists of every tenant, 8 in flight per tenant (the sync's default
  `concurrency`);
- `sync`: `sessionsync sync session_services` into a new warehouse, default settings.

`--repeat` runs the cases again (the machine is shared, so compare cases of one run). It
prints orders/s, requests, CPU, the sandbox process's CPU during the case (near the wall time:
the sandbox is the bottleneck), peak RSS, the load average when the case ended, and the wall
time as a share of the concurrent floor's (`floor s / case s`). `--latency S`
makes the sandbox wait S seconds before each answer, as a real API's round trip does (the
local sandbox answers in about a millisecond, which hides how requests are sequenced). Then it moves
the sandbox clock 15 minutes (the next scheduled run) and prints that sync's requests.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Tuple

import httpx
import orjson

from bench.process import timed_process
from sandbox.core import Served, parse_iso_ms
from sandbox.serve import START
from sandbox.session_services import API_VERSION, TENANTS, token_for

DAYS = 30  # the first tenant gets 2/3 of the orders, the second 1/3
CONCURRENCY = 8  # the concurrent floor's requests in flight per tenant: the sync's default
START_DATE = "2026-09-01"


# -- the sandbox process ---------------------------------------------------------------------
def serve(orders: int) -> None:
    """Build the world and serve it until stdin closes; prints `READY <url> <orders>`."""
    from sandbox.session_services import SessionServicesApi

    api = SessionServicesApi(parse_iso_ms(START), seed=5, history_days=DAYS,
                             orders_per_day=orders / DAYS / 1.35)
    count = sum(len(t.orders.ids) for t in api.tenants.values())
    gc.freeze()  # the built world is permanent: the collector no longer rescans its records
    with Served(api) as served:
        floor(served.url)  # every page served once: each case then gets them cached
        print("READY", served.url, count, flush=True)
        sys.stdin.read()


# -- the fetch floor --------------------------------------------------------------------------
def floor(url: str, workers: int = 1) -> Tuple[int, int]:
    """Page what a first sync reads; returns (orders, requests).

    `workers` 1: one request after another, tenant after tenant. More: the way the sync reads
    (`sources/session_services`): every tenant's orders chain at once, then each tenant's
    events lists, then every tenant's per-event lists (admissions, then tickets), `workers`
    requests in flight per tenant.
    """
    requests = itertools.count()
    local = threading.local()

    def client(tenant: str) -> httpx.Client:  # one per tenant per thread, as the sync has
        clients = local.__dict__.setdefault("clients", {})
        if tenant not in clients:
            clients[tenant] = httpx.Client(base_url=url, timeout=60, headers={
                "Authorization": f"Bearer {token_for(tenant)}", "x-tenant-id": tenant,
                "x-api-version": API_VERSION})
        return clients[tenant]

    def pages(tenant: str, path: str, key: str, params: Dict[str, Any]) -> int:
        count = 0
        after = None
        while True:
            query = dict(params, limit=100, **({"after": after} if after else {}))
            body = orjson.loads(client(tenant).get(path, params=query).content)
            next(requests)
            count += len(body[key])
            after = body.get("after")
            if not after:
                return count

    def events(tenant: str) -> List[str]:
        pages(tenant, "/venues", "venues", {})
        found: List[str] = []
        for deleted in ("false", "true"):
            query = {"deleted": deleted}
            after = None
            while True:
                body = orjson.loads(client(tenant).get("/events", params=dict(
                    query, limit=100, **({"after": after} if after else {}))).content)
                next(requests)
                found += [e["id"] for e in body["events"]]
                after = body.get("after")
                if not after:
                    break
        return found

    def lists(tenant: str, ids: List[str]) -> List[Tuple[str, str, str, Dict[str, Any]]]:
        return ([(tenant, f"/events/{e}/admissions", "admissions", {}) for e in ids]
                + [(tenant, "/tickets", "tickets", {"eventId": e}) for e in ids])

    if workers <= 1:
        orders = 0
        for tenant in TENANTS:
            ids = events(tenant)
            for args in lists(tenant, ids)[:len(ids)]:
                pages(*args)
            orders += pages(tenant, "/orders", "orders", {})
            for args in lists(tenant, ids)[len(ids):]:
                pages(*args)
        return orders, next(requests)
    with ThreadPoolExecutor(workers * len(TENANTS)) as pool:
        orders = sum(pool.map(lambda t: pages(t, "/orders", "orders", {}), TENANTS))
        listed = list(pool.map(events, TENANTS))
        for kind in (0, 1):  # admissions, then tickets; tenants' reads in turn
            reads = [lists(t, e)[kind * len(e):(kind + 1) * len(e)]
                     for t, e in zip(TENANTS, listed, strict=True)]
            list(pool.map(lambda args: pages(*args),
                          [r for group in itertools.zip_longest(*reads) for r in group if r]))
    return orders, next(requests)


# -- one case in its own process --------------------------------------------------------------
def run(case: str, url: str, destination: str, tmp: str, checkout: str = ".",
        sandbox: Optional[int] = None) -> Dict[str, Any]:
    """One case as its own process: wall seconds from start to exit, CPU, peak RSS, and the
    CPU seconds the sandbox process `sandbox` (a pid) spent meanwhile."""
    env = dict(os.environ, SESSIONSYNC__PIPELINES_DIR=f"{tmp}/pipelines",
               SESSIONSYNC__WAREHOUSE=f"{tmp}/w.duckdb",
               SESSIONSYNC__FILE_WAREHOUSE=f"{tmp}/files", RUNTIME__LOG_LEVEL="WARNING",
               SOURCES__SESSION_SERVICES__BASE_URL=url,
               SOURCES__SESSION_SERVICES__TENANT_TOKENS=json.dumps(
                   {t: token_for(t) for t in TENANTS}),
               SOURCES__SESSION_SERVICES__START_DATE=START_DATE)
    cli = ([sys.executable, "-m", "bench.session_services_sync", "floor", url,
            "1" if case == "floor-serial" else str(CONCURRENCY)]
           if case.startswith("floor") else
           [os.path.join(checkout, ".venv/bin/python") if checkout != "." else sys.executable,
            "-m", "pipelines.cli", "sync", "session_services", "--destination", destination])
    httpx.post(f"{url}/_sandbox/reset")
    served = _cpu(sandbox)
    done = timed_process(cli, env, cwd=checkout)
    served = _cpu(sandbox) - served
    out = done.out
    if done.code != 0:
        raise SystemExit(f"{case} failed:\n{out[-2000:]}\n{done.errors[-2000:]}")
    if case.startswith("floor"):
        orders = int(out.split()[1])
    else:  # `session_services: ok (orders=100000, ...)`
        parts = out.split("(")[-1].rstrip().rstrip(")").replace(",", " ").split()
        counts = {k: int(v) for k, v in (p.split("=") for p in parts if "=" in p)}
        orders = counts.get("orders", 0)
    stats = httpx.get(f"{url}/_sandbox/stats").json()
    return {"orders": orders, "wall": done.wall, "cpu": done.cpu, "rss_mb": done.rss_mb,
            "load": os.getloadavg()[0], "sandbox_cpu": served,
            "requests": stats["requests"]}


def _cpu(pid: Optional[int]) -> float:
    """User + system CPU seconds of process `pid` so far (0 without one)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--destination", default="duckdb", choices=["duckdb", "parquet"])
    parser.add_argument("--repeat", type=int, default=1, help="floor/sync pairs to run")
    parser.add_argument("--before", metavar="CHECKOUT",
                        help="another checkout (with its .venv) whose sync runs too, before "
                             "this one's each time: a before/after comparison, interleaved")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="the sandbox waits this long before each answer (a real API's "
                             "round trip; the floor pays it too, one request after another)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "bench.session_services_sync", "serve",
                               str(args.orders)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert server.stdout is not None and server.stdin is not None
    line = server.stdout.readline().split()
    assert line and line[0] == "READY", line
    url, orders = line[1], int(line[2])
    print(f"sandbox: {orders} orders, built and served once in {time.perf_counter() - t0:.0f}s"
          + (f"; {args.latency * 1000:.0f} ms before each answer" if args.latency else ""))
    if args.latency:
        httpx.post(f"{url}/_sandbox/faults", json={"latency_seconds": args.latency})
    print(f"{'case':<13}{'orders':>8}{'wall s':>8}{'orders/s':>10}{'of floor':>9}{'requests':>9}"
          f"{'cpu s':>7}{'sandbox cpu':>12}{'rss MB':>8}{'load':>6}", flush=True)
    try:
        tmp = ""
        cases = ["floor-serial", "floor"] + (["sync-before"] if args.before else []) + ["sync"]
        for _ in range(args.repeat):
            base = 0.0
            for case in cases:
                tmp = tempfile.mkdtemp()
                m = run(case, url, args.destination, tmp,
                        args.before if case == "sync-before" else ".", server.pid)
                assert m["orders"] == orders, (case, m["orders"], orders)
                base = m["wall"] if case == "floor" else base
                share = f"{base / m['wall']:>9.2f}" if base else f"{'':>9}"
                print(f"{case:<13}{m['orders']:>8}{m['wall']:>8.2f}"
                      f"{m['orders'] / m['wall']:>10,.0f}{share}"
                      f"{m['requests']:>9}{m['cpu']:>7.1f}{m['sandbox_cpu']:>12.1f}"
                      f"{m['rss_mb']:>8.0f}{m['load']:>6.1f}", flush=True)
        httpx.post(f"{url}/_sandbox/advance", params={"seconds": 900})
        later = run("sync-later", url, args.destination, tmp)  # the last sync's warehouse
        print(f"run 15 min later: {later['wall']:.1f}s, {later['requests']} requests")
    finally:
        server.stdin.close()
        server.wait()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    elif len(sys.argv) > 3 and sys.argv[1] == "floor":
        print("orders {} requests {}".format(*floor(sys.argv[2], int(sys.argv[3]))))
    else:
        main()

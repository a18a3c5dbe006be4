"""The whole command, timed as a user runs it, beside a fetch floor paged in the same run.

    .venv/bin/python -m bench.whole --events 100000 300000 1000000

For each size it serves a sessionvision world from a process of its own (as `bench.compare`
does, every page served once before the cases so none pays for rendering), then runs, each
as a fresh process timed from start to exit with its own peak RSS (`wait4`):

- `floor`: an httpx + orjson loop paging what the backfill reads (events and sessions of the
  window, every person), storing nothing;
- `backfill duckdb` / `backfill delta`: `sessionsync backfill sessionvision --start <31 days
  ago> --end <now>` with default settings (7-day chunks, events, sessions and persons);
- `backfill duckdb, one chunk`: the same with `--chunk 40d`, to price a chunk's fixed cost.

It prints one row per case with the machine's load average when the case ended (the machine
is shared: compare cases of one run, not runs), and each case's wall time as a share of the
floor's (`floor s / case s`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Tuple

import httpx
import orjson

from bench.compare import DAYS, WINDOW, _source_env
from bench.process import timed_process
from sandbox.core import iso_ms, parse_iso_ms
from sandbox.sessionvision import DEMO_TOKEN, PROJECTS

CASES = ["floor", "backfill-duckdb", "backfill-delta", "backfill-duckdb-1chunk",
         "empty-1chunk", "empty-11chunks"]
EMPTY = (iso_ms(parse_iso_ms(WINDOW[0]) - 11 * 3_600_000), WINDOW[0])  # before the world


def floor(url: str) -> int:
    """Page the lists a default backfill reads; parse each page; store nothing."""
    rows = 0
    lists = [("events", {"date_from": WINDOW[0], "date_to": WINDOW[1]}),
             ("sessions", {"date_from": WINDOW[0], "date_to": WINDOW[1]}), ("persons", {})]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
                      timeout=60) as client:
        for project in PROJECTS:
            for kind, params in lists:
                cursor = None
                while True:
                    query: Dict[str, Any] = dict(params, limit=1000,
                                                 **({"cursor": cursor} if cursor else {}))
                    body = orjson.loads(client.get(f"/api/v1/projects/{project}/{kind}",
                                                   params=query).content)
                    rows += len(body["data"])
                    cursor = body["meta"]["next_cursor"]
                    if not body["meta"]["has_more"]:
                        break
    return rows


def command(case: str, url: str) -> List[str]:
    if case == "floor":
        return [sys.executable, "-m", "bench.whole", "floor", url]
    if case.startswith("empty"):  # 11 hours before the first event: the fixed cost alone
        return [sys.executable, "-m", "pipelines.cli", "backfill", "sessionvision", "--start",
                EMPTY[0], "--end", EMPTY[1], "--chunk", "1h" if "11" in case else "11h"]
    cli = [sys.executable, "-m", "pipelines.cli", "backfill", "sessionvision",
           "--start", WINDOW[0], "--end", WINDOW[1]]
    if case == "backfill-delta":
        cli += ["--destination", "parquet"]
    if case.endswith("1chunk"):
        cli += ["--chunk", f"{DAYS + 10}d"]
    return cli


def run(case: str, url: str) -> Dict[str, Any]:
    """One case as its own process: wall seconds from start to exit, CPU, peak RSS."""
    tmp = tempfile.mkdtemp()
    env = dict(os.environ, SESSIONSYNC__PIPELINES_DIR=f"{tmp}/pipelines",
               SESSIONSYNC__WAREHOUSE=f"{tmp}/w.duckdb",
               SESSIONSYNC__FILE_WAREHOUSE=f"{tmp}/files", RUNTIME__LOG_LEVEL="WARNING",
               **_source_env("sessionvision", url))
    done = timed_process(command(case, url), env)
    out = done.out
    if done.code != 0:
        raise SystemExit(f"{case} failed:\n{out[-2000:]}\n{done.errors[-2000:]}")
    rows = int(out.split()[-1]) if case == "floor" else sum(
        int(part.split("=")[1].rstrip(",)")) for part in out.split("(")[-1].split()
        if "=" in part)
    return {"rows": rows, "wall": done.wall, "cpu": done.cpu, "rss_mb": done.rss_mb,
            "load": os.getloadavg()[0]}


def serve(size: int) -> Tuple[subprocess.Popen, str]:
    """The sandbox world in a process of its own (`bench.compare serve`)."""
    server = subprocess.Popen([sys.executable, "-m", "bench.compare", "serve", "sessionvision",
                               str(size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert server.stdout is not None
    line = server.stdout.readline().split()
    assert line and line[0] == "READY", line
    return server, line[1]


def stop(server: subprocess.Popen) -> None:
    """End a `serve` process: closing its stdin tells it to exit."""
    assert server.stdin is not None
    server.stdin.close()
    server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="*", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--cases", nargs="*", default=CASES, choices=CASES)
    args = parser.parse_args()
    began = time.perf_counter()
    print(f"{'events':>9} {'case':<24}{'rows':>10}{'wall s':>8}{'of floor':>9}{'cpu s':>7}"
          f"{'rss MB':>8}{'load':>6}", flush=True)
    for size in args.events:
        server, url = serve(size)
        try:
            base, walls = None, {}
            for case in ["floor"] + [c for c in args.cases if c != "floor"]:
                m = run(case, url)
                base = m["wall"] if case == "floor" else base
                share = base / m["wall"] if base else 0.0
                walls[case] = m["wall"]
                print(f"{size:>9} {case:<24}{m['rows']:>10}{m['wall']:>8.2f}{share:>9.2f}"
                      f"{m['cpu']:>7.1f}{m['rss_mb']:>8.0f}{m['load']:>6.1f}", flush=True)
            if "empty-1chunk" in walls and "empty-11chunks" in walls:
                print(f"{size:>9} fixed cost per chunk: "
                      f"{(walls['empty-11chunks'] - walls['empty-1chunk']) / 10:.2f} s", flush=True)
        finally:
            stop(server)
    print(f"bench.whole took {time.perf_counter() - began:.0f}s")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "floor":
        print("rows", floor(sys.argv[2]))
    else:
        main()

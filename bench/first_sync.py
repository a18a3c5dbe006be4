"""A first `sessionsync sync sessionvision` of a whole history, as a user runs it.

    .venv/bin/python -m bench.first_sync --events 1000000 --destination duckdb parquet

Serves a world of `--events` events over 30 days (as `bench.whole` does, in a process of
its own), then runs `sessionsync sync sessionvision` once per destination in a fresh process
with default settings (`start_date` at the window's start) and prints its wall time, its
peak RSS (the child's, from the kernel) and the rows each table holds afterwards. `--cli`
runs other checkouts' commands (e.g. `/work/main/.venv/bin/sessionsync`, a first sync in
one load) for a before/after.

The sandbox holds its world in memory (about 5.8 GB at 1M events), so the size this can serve
is bounded by the machine's memory, not by sessionsync.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench.compare import _source_env
from bench.process import timed_process
from bench.whole import serve, stop


def first_sync(cli: str, destination: str, url: str) -> str:
    """One first sync in a fresh process and warehouse; its line of the report."""
    tmp = tempfile.mkdtemp()
    env = dict(os.environ, SESSIONSYNC__PIPELINES_DIR=f"{tmp}/pipelines",
               SESSIONSYNC__WAREHOUSE=f"{tmp}/w.duckdb", SESSIONSYNC__FILE_WAREHOUSE=f"{tmp}/files",
               RUNTIME__LOG_LEVEL="WARNING", **_source_env("sessionvision", url))
    args = [cli, "sync", "sessionvision"]
    if destination != "duckdb":
        args += ["--destination", destination]
    done = timed_process(args, env)
    code = done.code
    tail = ((done.errors or done.out) if code else done.out).strip().splitlines()[-1:]
    return (f"{destination:<8}{'ok' if code == 0 else f'exit {code}':>8}{done.wall:>9.1f}"
            f"{done.cpu:>8.1f}{done.rss_mb:>9.0f}"
            f"{os.getloadavg()[0]:>6.1f}  {' '.join(tail)[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--destination", nargs="*", default=["duckdb", "parquet"],
                        choices=["duckdb", "parquet"])
    parser.add_argument("--cli", nargs="*",
                        default=[str(Path(sys.executable).parent / "sessionsync")])
    args = parser.parse_args()
    server, url = serve(args.events)
    try:
        print(f"{args.events} events", flush=True)
        print(f"{'into':<8}{'status':>8}{'wall s':>9}{'cpu s':>8}{'rss MB':>9}{'load':>6}",
              flush=True)
        for destination in args.destination:
            for cli in args.cli:
                print(first_sync(cli, destination, url) + f"  ({cli})", flush=True)
    finally:
        stop(server)


if __name__ == "__main__":
    main()

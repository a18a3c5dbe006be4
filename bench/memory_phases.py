"""Peak RSS of a default sessionvision backfill, per phase, in one process.

    .venv/bin/python -m bench.memory_phases --events 1000000 --destination duckdb

Serves a world as `bench.whole` does, runs `pipelines.backfill.backfill` over the same
31-day window with default chunking, and samples this process's RSS every 20 ms, filed
under the phase running then: dlt's extract, normalize and load, the run log, the BI copy,
or anything else (`other`: source setup, read-backs, state). Prints the peak per phase.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List

from bench.compare import WINDOW, _source_env
from bench.whole import serve, stop


def _rss_mb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                "usmblks", "fsmblks", "uordblks", "fordblks",
                                                "keepcost")]


def _heap_mb() -> str:
    """The C heap (glibc malloc: in use / free but kept) and Arrow's pool, in MB."""
    import pyarrow as pa
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        heap = (f"malloc in use {(info.uordblks + info.hblkhd) >> 20}, "
                f"free kept {info.fordblks >> 20}")
    except (OSError, AttributeError):
        heap = "malloc n/a"
    return f"{heap}, arrow {pa.total_allocated_bytes() >> 20}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--destination", default="duckdb", choices=["duckdb", "parquet"])
    parser.add_argument("--load-rows", type=int, default=None,
                        help="rows per load (pipelines.backfill.LOAD_ROWS), to compare")
    parser.add_argument("--duckdb-memory", default=None,
                        help="DuckDB memory_limit of row-sized loads, e.g. 96MB, to compare")
    parser.add_argument("--trim", action="store_true",
                        help="malloc_trim(0) after each run (glibc), to compare")
    args = parser.parse_args()
    server, url = serve(args.events)
    tmp = tempfile.mkdtemp()
    os.environ.update(SESSIONSYNC__PIPELINES_DIR=f"{tmp}/pipelines",
                      SESSIONSYNC__WAREHOUSE=f"{tmp}/w.duckdb",
                      SESSIONSYNC__FILE_WAREHOUSE=f"{tmp}/files", RUNTIME__LOG_LEVEL="WARNING",
                      **_source_env("sessionvision", url))
    import dlt

    import pipelines.backfill as backfill
    from pipelines import runlog

    phase: List[str] = ["other"]
    peaks: Dict[str, int] = {}

    run_peaks: Dict[str, int] = {}  # the current run's, per phase

    def sample() -> None:
        while True:
            rss = _rss_mb()
            peaks[phase[0]] = max(peaks.get(phase[0], 0), rss)
            run_peaks[phase[0]] = max(run_peaks.get(phase[0], 0), rss)
            time.sleep(0.02)

    def tag(owner: Any, name: str, label: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def tagged(*a: Any, **k: Any) -> Any:
            before, phase[0] = phase[0], label
            try:
                return original(*a, **k)
            finally:
                phase[0] = before
        setattr(owner, name, tagged)

    for step in ("extract", "normalize", "load"):
        tag(dlt.Pipeline, step, step)
    tag(runlog, "high_water_marks", "run log")
    tag(runlog, "write", "run log")
    tag(backfill, "publish_bi_copy", "bi copy")
    if args.load_rows:
        backfill.LOAD_ROWS = args.load_rows
    if args.duckdb_memory:
        backfill.ROW_SIZED_DUCKDB_MEMORY = args.duckdb_memory
    run_one = backfill.sync_locked

    def each_run(*a: Any, **k: Any) -> Any:
        run_peaks.clear()
        result = run_one(*a, **k)
        if args.trim:  # hand glibc's freed pages back between runs
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        print(f"after a run of {sum(result.rows.values())} rows ({result.rows}): RSS "
              f"{_rss_mb()} MB, {_heap_mb()}; its peaks: "
              + ", ".join(f"{p} {v}" for p, v in sorted(run_peaks.items())), flush=True)
        return result
    backfill.sync_locked = each_run  # type: ignore[assignment]
    print(f"after imports: {_rss_mb()} MB", flush=True)
    threading.Thread(target=sample, daemon=True).start()
    try:
        result = backfill.backfill("sessionvision", WINDOW[0], WINDOW[1], None, None,
                                   args.destination)
    finally:
        stop(server)
    assert result.ok, result.error
    print(f"{args.events} events -> {args.destination}: {result.rows}")
    print("peak RSS MB per phase: " + ", ".join(f"{k} {v}" for k, v in sorted(peaks.items())))
    print(f"peak RSS MB: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}")


if __name__ == "__main__":
    main()

"""The side-by-side benchmark runs end to end at a small size (a smoke test: no timings)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_compare_benchmark_runs_every_case_and_prints_the_table() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--events", "3000", "--sessions", "3000",
         "--rest-api-events", "300"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = {tuple(line.split()[:2]): int(line.split()[2]) for line in proc.stdout.splitlines()
             if line.startswith(("sessionvision ", "mobilenext "))
             and len(line.split()) == 8}
    assert len(table) == 8
    sv = table[("sessionvision", "sessionsync-duckdb")]
    assert sv == table[("sessionvision", "sessionsync-parquet")] == \
        table[("sessionvision", "fetch-floor")] > 2000
    mn = table[("mobilenext", "sessionsync-duckdb")]
    assert mn == table[("mobilenext", "sessionsync-parquet")] > 2000
    # naive strictly-before paging can only lose same-millisecond sessions, never add any
    assert table[("mobilenext", "fetch-floor")] <= mn
    assert "sessionsync-duckdb / rest_api-duckdb" in proc.stdout


def test_whole_command_benchmark_runs_every_case_and_prints_the_table() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.whole", "--events", "3000"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split()[1]: int(line.split()[2]) for line in proc.stdout.splitlines()
            if line.startswith(" ") and len(line.split()) == 8}
    assert set(rows) == {"floor", "backfill-duckdb", "backfill-delta",
                         "backfill-duckdb-1chunk", "empty-1chunk", "empty-11chunks"}
    # one run loads what the floor reads: every event, session and person of the window
    assert rows["backfill-duckdb-1chunk"] == rows["floor"] > 3000
    assert rows["backfill-duckdb"] == rows["backfill-delta"] >= rows["floor"]
    assert rows["empty-1chunk"] == rows["empty-11chunks"] == 0
    assert "fixed cost per chunk" in proc.stdout


def test_session_services_benchmark_runs_the_floor_and_the_whole_sync() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.session_services_sync", "--orders",
                           "2000"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()
            if line.split() and line.split()[0] in ("floor", "sync")}
    # the sync loads every order the floor reads, with the same requests (+ its clock read)
    assert int(rows["sync"][1]) == int(rows["floor"][1]) > 1000
    assert int(rows["floor"][5]) < int(rows["sync"][5]) <= int(rows["floor"][5]) + 2
    assert "run 15 min later" in proc.stdout

"""What the Postgres and S3 warehouse tests share: each source's truth check, the sync /
incremental / no-op contract, load counts, kills during a load, and a scan for secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List

import pytest

from pipelines import status
from pipelines.run import sync_source
from pipelines.warehouse import connect, resolve_location
from sources.spec import load_spec
from tests.conftest import ROOT, TRUTH, assert_quiet_run

SOURCES = tuple(TRUTH)
ADVANCE = {"mobilenext": 25 * 3600,  # past the reconcile scan (deletions)
           "session_services": 2 * 86400, "tagbase": 86400,
           "sessionvision": 86400}


def run_log(destination: str) -> List[Dict[str, Any]]:
    with connect(destination, resolve_location(destination, None)) as con:
        cur = con.execute("SELECT * FROM sessionsync_ops.sessionsync_runs ORDER BY finished_at")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def sync_incremental_noop(source: str, api: Any, destination: str) -> None:
    """First sync, a sync after the API's clock moved, and a sync with nothing new: each
    equals the truth; the no-op run writes no load package; the run log and `status`
    follow."""
    first = sync_source(source, destination)
    assert first.ok, first.error
    assert sum(first.rows.values()) > 0
    TRUTH[source](api, destination)

    api.advance(ADVANCE[source])
    second = sync_source(source, destination)
    assert second.ok, second.error
    TRUTH[source](api, destination)

    assert_quiet_run(api, source, destination)
    loaded = TRUTH[source](api, destination)

    runs = [r for r in run_log(destination) if r["source"] == source]
    resources = {r["resource"] for r in runs}
    # three syncs, each one run (a first sync of a source with `history` is several: its
    # backfill's loads, then the hand-over), every one ok
    assert {r["status"] for r in runs} == {"ok"}, runs
    per_run = {r["run_id"]: r for r in runs}
    assert len(per_run) >= 3 and len(runs) >= 3 * len(resources), runs
    if load_spec(source).history is None:
        assert len(runs) == 3 * len(resources), runs
    entries = status.status([source], destination, resolve_location(destination, None))
    by_resource = {e.resource: e for e in entries}
    for table, rows in loaded.items():
        if table in by_resource:
            assert by_resource[table].rows == len(rows)
            assert by_resource[table].last_success is not None


def kill_during_load(source: str, destination: str, job: str) -> subprocess.CompletedProcess:
    """Run a sync in a process that kills itself (SIGKILL) right after its first data load
    job ran, before the load completes: the job's rows are in the warehouse (Postgres
    staging table, Delta commit), the package is not marked loaded."""
    module, cls = job.rsplit(".", 1)
    script = (
        "import os, signal, importlib\n"
        f"job = getattr(importlib.import_module({module!r}), {cls!r})\n"
        "run = job.run\n"
        "def run_then_die(self):\n"
        "    run(self)\n"
        "    if not self.load_table_name.startswith('_dlt'):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "job.run = run_then_die\n"
        "from pipelines.run import sync_source\n"
        f"print(sync_source({source!r}, {destination!r}))\n"
    )
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "sessionsync"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))


def assert_no_secret(secrets: Iterable[str], texts: Iterable[str], folders: Iterable[Path],
                     blobs: Iterable[bytes]) -> None:
    """No secret in any text, any file under `folders`, or any warehouse blob."""
    for secret in secrets:
        assert len(secret) >= 12
        for text in texts:
            assert secret not in text, "secret in output"
        for folder in folders:
            for path in folder.rglob("*"):
                if path.is_file():
                    assert secret.encode() not in path.read_bytes(), f"secret in {path}"
        for blob in blobs:
            assert secret.encode() not in blob, "secret in the warehouse"


def source_api(request: pytest.FixtureRequest, source: str) -> Any:
    """The sandbox fixture of `source` (each test module defines its own)."""
    return request.getfixturevalue(source)


def hold_lock_elsewhere(destination: str, folder: Path) -> subprocess.Popen:
    """A process that holds mobilenext's warehouse lock as another host would: its own
    working folder (`folder`), so only the lock in the warehouse is shared. Returns once held."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from pipelines.lock import warehouse_lock\n"
        "from pipelines.warehouse import resolve_location\n"
        f"with warehouse_lock('mobilenext', {destination!r}, "
        f"resolve_location({destination!r}, None)):\n"
        "    print('held', flush=True); time.sleep(120)")], cwd=ROOT, stdout=subprocess.PIPE,
        text=True, env={**os.environ, "SESSIONSYNC__PIPELINES_DIR": str(folder)})
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder

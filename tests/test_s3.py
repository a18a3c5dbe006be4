"""Delta tables on S3-compatible storage (moto's server on 127.0.0.1, tests/servers.py): every
source's sync, incremental and no-op run equal the truth read back through DuckDB and
deltalake; concurrent commits to one table lose and duplicate nothing; a kill during the load;
the leased lock object; the keys never leak."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, List

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from pipelines.lock import LOCKED_EXIT_CODE, LockedError, object_lock
from pipelines.remote import object_store
from pipelines.run import sync_source
from pipelines.transform import DBT_DIR, bi_database, transform
from pipelines.warehouse import connect, resolve_location
from sandbox.core import iso_ms, parse_iso_ms
from sandbox.mobilenext import MobileNextApi
from sandbox.serve import START
from sandbox.sessionvision import PROJECTS, SessionVisionApi
from tests.bi import (
    World,
    assert_marts_equal_truth,
    assert_report_has_every_chart,
    late_data_then_incremental_equals_rebuild,
    snapshot,
)
from tests.conftest import assert_equals_truth
from tests.warehouses import (
    ROOT,
    SOURCES,
    assert_no_secret,
    cli,
    hold_lock_elsewhere,
    kill_during_load,
    run_log,
    source_api,
    sync_incremental_noop,
)

DELTA_JOB = "dlt.destinations.impl.filesystem.filesystem.DeltaLoadFilesystemJob"
DAY_MS = 86_400_000


def warehouse() -> str:
    location = resolve_location("parquet", None)
    assert isinstance(location, str) and location.startswith("s3://")
    return location


@pytest.mark.parametrize("source", SOURCES)
def test_sync_incremental_and_noop_equal_the_truth(source: str,
                                                   request: pytest.FixtureRequest) -> None:
    api = source_api(request, source)
    request.getfixturevalue("s3")  # after the sandbox's settings: the warehouse is on S3
    sync_incremental_noop(source, api, "parquet")
    # the same tables read back with deltalake, as a BI tool or notebook would
    table = {"mobilenext": "sessions", "session_services": "orders",
             "tagbase": "verifications", "sessionvision": "events"}[source]
    _, options = object_store(warehouse())
    with connect("parquet", warehouse()) as con:
        ids = con.execute(f"SELECT count(DISTINCT id), count(*) FROM {source}.{table}").fetchall()
    delta = DeltaTable(f"{warehouse()}/{source}/{table}", storage_options=options)
    assert delta.to_pyarrow_table().num_rows == ids[0][0] == ids[0][1] > 0


def test_concurrent_commits_to_one_delta_table_lose_nothing(s3: Any) -> None:
    """delta-rs writes each commit `_delta_log/<version>.json` with a conditional put
    (If-None-Match: *): of eight writers racing for a version, one wins, the others get 412,
    re-read the log and retry at the next version. Nothing overwrites another's commit."""
    _, options = object_store(warehouse())
    url = f"{warehouse()}/race/appends"
    write_deltalake(url, pa.table({"id": [0], "writer": [0]}), storage_options=options)
    writers, errors = 8, []
    start = threading.Barrier(writers)

    def append(n: int) -> None:
        start.wait()
        try:
            write_deltalake(url, pa.table({"id": [n * 100 + k for k in range(10)],
                                           "writer": [n] * 10}),
                            mode="append", storage_options=options)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(1, writers + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    table = DeltaTable(url, storage_options=options)
    rows = table.to_pyarrow_table().column("id").to_pylist()
    assert table.version() == writers
    assert sorted(rows) == [0] + sorted(n * 100 + k for n in range(1, writers + 1)
                                        for k in range(10))


def test_two_backfill_chunks_committing_at_once_lose_and_duplicate_nothing(
        sessionvision: SessionVisionApi, s3: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two chunks of a sessionvision backfill, each in a process of its own (as two hosts
    would) and past the lock, merge into the same Delta tables; both hold their merge until
    the other reaches its own, so their commits race. Every event of both windows is then in
    the table once, and each commit of the log is one of theirs."""
    start = parse_iso_ms(START)
    monkeypatch.setenv("SOURCES__SESSIONVISION__START_DATE", iso_ms(start - 2 * DAY_MS))
    assert sync_source("sessionvision", "parquet").ok  # the tables exist; older days missing
    windows = [(start - 6 * DAY_MS, start - 4 * DAY_MS), (start - 4 * DAY_MS, start - 2 * DAY_MS)]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    script = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "import deltalake.table as delta\n"
        "execute = delta.TableMerger.execute\n"
        "def at_once(self):\n"
        "    gate = Path(os.environ['BARRIER'])\n"
        "    (gate / str(os.getpid())).touch()\n"
        "    deadline = time.time() + 60\n"
        "    while len(list(gate.iterdir())) < 2 and time.time() < deadline:\n"
        "        time.sleep(0.002)\n"
        "    return execute(self)\n"
        "delta.TableMerger.execute = at_once\n"
        "from pipelines.run import sync_locked\n"
        "from pipelines.warehouse import resolve_location\n"
        "name, lo, hi = sys.argv[1:]\n"
        "r = sync_locked('sessionvision', 'parquet', None, resolve_location('parquet', None),\n"
        "                'backfill', 'sessionsync_sessionvision_backfill_' + name,\n"
        "                only=['events', 'sessions', 'persons'], window=[lo, hi])\n"
        "print(r.ok, r.rows, r.error)\n"
        "sys.exit(0 if r.ok else 1)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, f"chunk{n}", iso_ms(lo), iso_ms(hi)],
                              cwd=ROOT, env={**os.environ, "BARRIER": str(barrier)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n, (lo, hi) in enumerate(windows)]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert len(list(barrier.iterdir())) == 2, "both chunks reached their merge"
    for code, out, err in outcomes:
        assert code == 0, (out + err)[-3000:]
    older = {e["id"] for p in PROJECTS for e in sessionvision.truth(p, "events")
             if start - 6 * DAY_MS <= parse_iso_ms(e["timestamp"]) < start - 2 * DAY_MS}
    with connect("parquet", warehouse()) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM sessionvision.events").fetchall()]
    assert len(ids) == len(set(ids)), "an event was loaded twice"
    assert older and older <= set(ids), f"{len(older - set(ids))} backfilled events lost"
    _, options = object_store(warehouse())
    history = DeltaTable(f"{warehouse()}/sessionvision/events", storage_options=options).history()
    assert len(history) == len({h["version"] for h in history})
    assert sum(1 for h in history if h["operation"] == "MERGE") >= 2
    since = {e["id"] for p in PROJECTS for e in sessionvision.truth(p, "events")
             if parse_iso_ms(e["timestamp"]) >= start - 6 * DAY_MS}
    assert set(ids) == since, "the table holds the first sync's events and both windows'"


def test_a_run_killed_during_its_load_then_rerun_equals_the_truth(
        mobilenext: MobileNextApi, s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__MOBILENEXT__RECONCILE_EVERY_HOURS", "0")  # exact deletions
    assert sync_source("mobilenext", "parquet").ok
    mobilenext.advance(12 * 3600)
    _, options = object_store(warehouse())
    before = DeltaTable(f"{warehouse()}/mobilenext/sessions", storage_options=options).version()
    killed = kill_during_load("mobilenext", "parquet", DELTA_JOB)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    after = DeltaTable(f"{warehouse()}/mobilenext/sessions", storage_options=options).version()
    assert after == before + 1, "the kill came after the merge committed"
    mobilenext.advance(3600)
    again = cli("sync", "mobilenext", "--destination", "parquet")
    assert again.returncode == 0, again.stderr
    assert "finishing the load an interrupted run left behind" in again.stderr
    assert_equals_truth(mobilenext, "parquet")  # also: every id once


def test_lock_object_refuses_a_live_holder_and_is_taken_over_when_it_dies(
        mobilenext: MobileNextApi, s3: Any, tmp_path: Path) -> None:
    holder = hold_lock_elsewhere("parquet", tmp_path / "host2")
    refused = cli("sync", "mobilenext", "--destination", "parquet")
    assert refused.returncode == LOCKED_EXIT_CODE, refused.stderr
    assert f"pid {holder.pid}" in refused.stderr
    assert len(mobilenext.requests) == 0, "a refused writer must not start"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    taken = cli("sync", "mobilenext", "--destination", "parquet")
    assert taken.returncode == 0, taken.stderr
    assert f"taking over a lock its holder left behind (pid {holder.pid}" in taken.stderr
    assert_equals_truth(mobilenext, "parquet")
    fs, _ = object_store(warehouse())
    fs.invalidate_cache()
    assert not fs.exists(f"{warehouse()}/_sessionsync_locks/mobilenext.lock"), \
        "a finished run leaves no lock behind"


def test_lock_held_on_another_host_counts_until_its_lease_runs_out(s3: Any) -> None:
    fs, _ = object_store(warehouse())
    path = f"{warehouse()}/_sessionsync_locks/tagbase.lock"

    def held_elsewhere(expires: float) -> None:
        fs.pipe_file(path, json.dumps({"holder": "pid 7 on host-b", "host": "host-b",
                                       "pid": 7, "expires": expires}).encode())

    held_elsewhere(time.time() + 30)
    with pytest.raises(LockedError, match="pid 7 on host-b"):
        with object_lock("tagbase", warehouse()):
            pass
    held_elsewhere(time.time() - 1)  # host-b stopped renewing a while ago
    with object_lock("tagbase", warehouse()):
        body = json.loads(fs.cat_file(path))
        assert body["pid"] == os.getpid()
        with pytest.raises(LockedError):  # and the new holder is exclusive in turn
            with object_lock("tagbase", warehouse()):
                pass
    fs.invalidate_cache()
    assert not fs.exists(path)


def test_keys_never_in_output_logs_or_the_warehouse(mobilenext: MobileNextApi, s3: Any,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    good = cli("sync", "mobilenext", "--destination", "parquet")
    assert good.returncode == 0, good.stderr
    state = cli("status", "mobilenext", "--destination", "parquet")
    assert state.returncode == 0, state.stderr
    assert any(line.split()[:2] == ["mobilenext", "sessions"]
               for line in state.stdout.splitlines()), state.stdout
    assert {r["source"] for r in run_log("parquet")} == {"mobilenext"}
    wrong = "wrong-" + s3.secret[::-1]
    monkeypatch.setenv("DESTINATION__FILESYSTEM__CREDENTIALS__AWS_SECRET_ACCESS_KEY", wrong)
    bad = cli("sync", "mobilenext", "--destination", "parquet")
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1, bad.stderr
    client = s3.client()
    blobs: List[bytes] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket):
        for obj in page.get("Contents", []):
            blobs.append(client.get_object(Bucket=s3.bucket, Key=obj["Key"])["Body"].read())
    assert len(blobs) >= 10
    # the access key id is an identifier (dlt's trace keeps it), the secret key is the secret
    assert_no_secret([s3.secret, wrong],
                     [good.stdout, good.stderr, state.stdout, state.stderr, bad.stdout,
                      bad.stderr], [tmp_path], blobs)


@pytest.mark.slow
def test_bi_marts_published_to_the_bucket_equal_the_sandbox_metrics(
        world: World, s3: Any, tmp_path: Path) -> None:
    """`sync --transform` publishes the marts as Delta tables `<warehouse>/bi/<mart>`, read
    back here over S3 as a BI tool on another host would; late data's incremental transform
    equals a rebuild; a host without the local build gets the same marts; `report` reads the
    bucket; the secret key is in no output, file (dbt's included) or object."""
    done = cli("sync", "--destination", "parquet", "--transform")
    assert done.returncode == 0, done.stderr
    assert f"marts in {warehouse()}/bi " in done.stdout, done.stdout
    _, options = object_store(warehouse())
    published = DeltaTable(f"{warehouse()}/bi/event_sales_daily", storage_options=options)
    assert published.to_pyarrow_table().num_rows > 0
    assert_marts_equal_truth(world, "parquet")
    late_data_then_incremental_equals_rebuild(world, "parquet")

    marts = snapshot("parquet", ("active_users_daily", "event_sales_daily", "event_admissions"))
    bi_database("parquet", warehouse()).unlink()  # as on a host that never transformed
    again = transform("parquet")
    assert again.ok, again.error
    assert snapshot("parquet", tuple(marts)) == marts

    page = tmp_path / "report.html"
    report = cli("report", "--destination", "parquet", "--output", str(page))
    assert report.returncode == 0, report.stderr
    assert_report_has_every_chart(page)
    client = s3.client()
    blobs: List[bytes] = []
    for listing in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket):
        for obj in listing.get("Contents", []):
            blobs.append(client.get_object(Bucket=s3.bucket, Key=obj["Key"])["Body"].read())
    assert_no_secret([s3.secret], [done.stdout, done.stderr, report.stdout, report.stderr],
                     [tmp_path, DBT_DIR], blobs)

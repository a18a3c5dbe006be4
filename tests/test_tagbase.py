"""Tagbase end to end: the integration's log on disk, by-id reads from the sandbox."""

from __future__ import annotations

import gzip
import zlib
from typing import Any, Dict, List

import orjson

from pipelines.run import sync_source
from pipelines.warehouse import connect, resolve_location
from sandbox.tagbase import TagbaseApi
from tests.conftest import assert_quiet_run, run_cli
from tests.conftest import tagbase_rows as loaded
from tests.conftest import tagbase_truth as assert_equals_truth

HOUR_S, DAY_S = 3600, 86_400


def log_lines(api: TagbaseApi) -> List[bytes]:
    return [line for path in sorted(api.log_dir.glob("*.jsonl.gz"))
            for line in gzip.decompress(path.read_bytes()).splitlines()]


def requested(api: TagbaseApi, kind: str) -> List[str]:
    prefix = f"/api/v1/{kind}/"
    return [p[len(prefix):] for _, p in api.requests if p.startswith(prefix)]


def test_initial_sync_equals_truth_with_duplicate_lines(tagbase: TagbaseApi) -> None:
    lines = log_lines(tagbase)
    assert len(lines) > len(set(lines)), "the log must hold a line written twice"
    assert len(list(tagbase.log_dir.iterdir())) > 2, "the log must have rotated"
    result = sync_source("tagbase")
    assert result.ok, result.error
    data = assert_equals_truth(tagbase)
    assert any(not r["found"] for r in data["tags"].values()), "no foreign tag in the log"
    # each referenced id read once
    assert sorted(requested(tagbase, "sessions")) == sorted(data["sessions"])
    assert sorted(requested(tagbase, "tags")) == sorted(data["tags"])


def test_incremental_sync_rereads_only_what_could_change(tagbase: TagbaseApi) -> None:
    assert sync_source("tagbase").ok
    before = {"sessions": loaded("sessions"), "tags": loaded("tags")}
    files_before = {p.name: p.stat().st_size for p in tagbase.log_dir.iterdir()}
    known = set(tagbase.verifications)
    tagbase.reset_stats()
    tagbase.advance(2 * DAY_S)  # more scans, a grown current file, rotations, configurations

    files_after = {p.name: p.stat().st_size for p in tagbase.log_dir.iterdir()}
    assert any(files_after[n] > s for n, s in files_before.items()), "no file grew"
    assert files_after.keys() - files_before.keys(), "no new file"
    new = {k: v for k, v in tagbase.verifications.items() if k not in known}
    result = sync_source("tagbase")
    assert result.ok, result.error
    after = assert_equals_truth(tagbase)

    # the log was read from where the last run stopped, not from the start
    assert result.rows["verifications"] == len(new)
    # a session is read again only if new lines reference it or it was inside its window
    open_before = {s for s, r in before["sessions"].items()
                   if r["found"] and (r["fetched_at"] - r["inserted_at"]).total_seconds() < 600}
    may_read = {v["session"] for v in new.values()} | open_before
    assert set(requested(tagbase, "sessions")) <= may_read
    assert len(requested(tagbase, "sessions")) == len(set(requested(tagbase, "sessions")))
    # a tag is read again only until it is configured; a 404 is never asked again
    settled = {t for t, r in before["tags"].items()
               if not r["found"] or r["status"] == "configured"}
    assert not set(requested(tagbase, "tags")) & settled
    newly_configured = [t for t, r in before["tags"].items()
                        if r["found"] and r["status"] == "created"
                        and after["tags"][t]["status"] == "configured"]
    assert newly_configured, "no tag was configured between the runs"


def test_second_run_with_nothing_new_reads_only_open_ids(tagbase: TagbaseApi) -> None:
    assert sync_source("tagbase").ok
    assert_quiet_run(tagbase, "tagbase")  # re-read rows that did not change are not written
    unconfigured = {t for t, r in loaded("tags").items()
                    if r["found"] and r["status"] != "configured"}
    assert set(requested(tagbase, "tags")) == unconfigured
    assert len(requested(tagbase, "sessions")) <= 5  # only sessions opened in the last 10 min
    # a tag configured with no new scan of it is still brought up to date
    tag = sorted(unconfigured)[0]
    tagbase._on_tag_configure(tag)
    assert sync_source("tagbase").ok
    assert loaded("tags")[tag]["status"] == "configured"


def test_malformed_lines_are_reported_and_the_rest_loads(tagbase: TagbaseApi) -> None:
    good = log_lines(tagbase)[0]
    other = orjson.loads(log_lines(tagbase)[1])
    other["data"]["id"] = "vrf_manual0000000001"
    manual = tagbase.log_dir / "zz-manual.jsonl"  # a plain file beside the gzip ones
    manual.write_bytes(b"\n".join([good, b"{not json", b'{"data": {"type": "tags"}}',
                                   orjson.dumps(other)]) + b"\n" + b'{"data": {"ty')
    proc = run_cli("sync", "tagbase")
    assert proc.returncode == 0, proc.stderr
    assert "zz-manual.jsonl:2: not valid JSON" in proc.stderr
    assert "zz-manual.jsonl:3: not a verification document" in proc.stderr
    rejected = {(r["file"], r["line"]): r["reason"] for r in _rows("rejected_log_lines")}
    assert rejected == {("zz-manual.jsonl", 2): "not valid JSON",
                        ("zz-manual.jsonl", 3): "not a verification document"}
    assert "vrf_manual0000000001" in loaded("verifications")
    # the unfinished last line waits for the writer; once complete it loads
    finished = orjson.loads(log_lines(tagbase)[2])
    finished["data"]["id"] = "vrf_manual0000000002"
    manual.write_bytes(manual.read_bytes()[: -len(b'{"data": {"ty')] + orjson.dumps(finished)
                       + b"\n")
    assert sync_source("tagbase").ok
    assert "vrf_manual0000000002" in loaded("verifications")
    assert len(_rows("rejected_log_lines")) == 2


def test_foreign_and_deleted_ids_are_recorded_as_not_found(tagbase: TagbaseApi) -> None:
    assert sync_source("tagbase").ok
    with connect("duckdb", resolve_location("duckdb", None)) as con:
        missing = {r[0] for r in con.execute(
            "SELECT id FROM tagbase.tags WHERE NOT found").fetchall()}
        scans = con.execute("""
            SELECT count(*) FROM tagbase.verifications v JOIN tagbase.tags t ON t.id = v.tag_id
            WHERE NOT t.found""").fetchall()[0][0]
    foreign = {t for t, a in tagbase.owner.items() if a != "acc_demo"}
    referenced = {v["tag"] for v in tagbase.verifications.values()}
    assert missing == referenced & (foreign | tagbase.deleted)
    assert missing & foreign and scans > 0


def test_wrong_key_fails_clearly_and_loses_nothing(tagbase: TagbaseApi) -> None:
    bad = "key_demo01:wrong-secret-value"
    proc = run_cli("sync", "tagbase", SOURCES__TAGBASE__API_KEY=bad)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "tagbase" in lines[0] and "HTTP 401" in lines[0], proc.stderr
    assert "wrong-secret-value" not in proc.stdout + proc.stderr
    # the log position did not move: the right key then loads everything
    assert sync_source("tagbase").ok
    assert_equals_truth(tagbase)


def test_parquet_warehouse_equals_truth_under_faults(tagbase: TagbaseApi) -> None:
    tagbase.faults.update(rate_429=0.1, rate_5xx=0.05, retry_after=0)
    assert sync_source("tagbase", "parquet").ok
    tagbase.advance(DAY_S)
    assert sync_source("tagbase", "parquet").ok
    assert tagbase.injected.get("429", 0) > 0
    assert_equals_truth(tagbase, "parquet")


def _rows(table: str) -> List[Dict[str, Any]]:
    with connect("duckdb", resolve_location("duckdb", None)) as con:
        cur = con.execute(f"SELECT * FROM tagbase.{table}")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# -- the log as real writers leave it: torn members, members split mid-line ---------------


def rejected() -> List[Dict[str, Any]]:
    with connect("duckdb", resolve_location("duckdb", None)) as con:
        try:
            cur = con.execute("SELECT * FROM tagbase.rejected_log_lines")
        except Exception:  # not loaded: nothing was rejected  # noqa: BLE001
            return []
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def members(api: TagbaseApi) -> List[bytes]:
    """The decoded text of every complete gzip member of the log, in order."""
    out = []
    for path in sorted(api.log_dir.glob("*.jsonl.gz")):
        data = path.read_bytes()
        while data:
            decoder = zlib.decompressobj(wbits=31)
            try:
                text = decoder.decompress(data)
            except zlib.error:
                break
            if not decoder.eof:
                break
            out.append(text)
            data = decoder.unused_data
    return out


def test_torn_members_followed_by_good_ones_are_skipped_and_reported(
        tagbase: TagbaseApi) -> None:
    tagbase.torn_rate = 0.4
    for _ in range(24):
        tagbase.advance(HOUR_S)
    tagbase.torn_rate = 0.0
    tagbase.flush_log()  # the restarted writer writes the last torn flush's lines again
    assert len(tagbase.torn) >= 3, "the writer tore too few members to prove anything"
    proc = run_cli("sync", "tagbase")
    assert proc.returncode == 0, proc.stderr
    assert_equals_truth(tagbase)
    rows = rejected()
    assert sorted((r["file"], r["reason"].split("byte offset ")[1].split(",")[0])
                  for r in rows) == sorted((f, str(at)) for f, at in tagbase.torn)
    assert all(r["reason"].startswith("truncated gzip member") for r in rows)
    assert proc.stderr.count("truncated gzip member") == len(tagbase.torn)


def test_a_member_being_written_at_the_end_waits_for_the_next_run(tagbase: TagbaseApi) -> None:
    assert sync_source("tagbase").ok
    tagbase.torn_rate = 1.0
    while not tagbase.torn:
        tagbase.advance(HOUR_S)  # the writer dies in this flush; the file ends mid-member
    tagbase.torn_rate = 0.0
    first = sync_source("tagbase")
    assert first.ok, first.error
    assert not rejected(), "a member that may still be written was rejected"
    tagbase.flush_log()  # restarted, the writer appends the same lines again
    second = sync_source("tagbase")
    assert second.ok, second.error
    assert [(r["file"], r["reason"].split("byte offset ")[1].split(",")[0])
            for r in rejected()] == [(f, str(at)) for f, at in tagbase.torn]
    assert_equals_truth(tagbase)


def test_lines_split_across_members_load_whole(tagbase: TagbaseApi) -> None:
    tagbase.split_rate = 1.0
    for _ in range(12):  # syncs while the log ends inside a line, and between members of one
        tagbase.advance(2 * HOUR_S)
        result = sync_source("tagbase")
        assert result.ok, result.error
        assert not rejected(), rejected()[:3]
    tagbase.flush_log(final=True)
    assert sync_source("tagbase").ok
    assert any(not m.endswith(b"\n") for m in members(tagbase)), "no member ended mid-line"
    assert not rejected()
    assert_equals_truth(tagbase)
    assert len(loaded("verifications")) == len(tagbase.verifications)


def test_time_passing_during_runs_loses_nothing(tagbase: TagbaseApi) -> None:
    """The clock moves with every by-id read, so tags are configured, sessions close and the
    log grows while a run reads; the next quiet run still brings everything up to date."""
    tagbase.faults.update(tick_seconds=120)
    for _ in range(3):
        files = {p.name: p.stat().st_size for p in tagbase.log_dir.iterdir()}
        result = sync_source("tagbase")
        assert result.ok, result.error
        grew = {p.name: p.stat().st_size for p in tagbase.log_dir.iterdir()} != files
        assert grew, "the log did not grow during the run"
        tagbase.advance(HOUR_S)
    tagbase.faults.update(tick_seconds=0)
    assert sync_source("tagbase").ok
    assert_equals_truth(tagbase)

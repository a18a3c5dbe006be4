"""The Tagbase verification log as real writers leave it: torn gzip members followed by good
ones, a member still being written at the end, lines split across members."""

from __future__ import annotations

import zlib
from typing import Any, Dict, List

from pipelines.run import sync_source
from pipelines.warehouse import connect, resolve_location
from sandbox.tagbase import TagbaseApi
from tests.test_mobilenext_failures import run_cli
from tests.test_tagbase import HOUR_S, assert_equals_truth, loaded
from tests.test_tagbase import tagbase  # noqa: F401  (fixture)


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

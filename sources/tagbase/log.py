"""Reading the integration's verification log incrementally.

The log is a folder (local path or any fsspec URL) of JSON Lines files, plain (`.jsonl`) or
gzip (`.jsonl.gz`). Files only grow and new files appear; lines are never rewritten. Per file
the source remembers where it stopped and how many lines that was, and reads only past it.
A line is complete at its `\n`, so one being written while the source reads is left for the
next run.

A gzip file is a series of members. Writers append one per flush, and block writers (bgzip)
cut lines across members, so the position is a member's start plus how many of its decoded
bytes were consumed (`skip`). A member that does not decode is either still being written
(nothing decodable follows it: left for the next run) or torn by a writer that died and,
restarted, appended new members (a later member decodes): its bytes are skipped to that
member, and the incomplete line they held is reported as one rejected line naming the byte
offset, so no run stops silently at the damage.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Iterator, List, Optional, Tuple

import fsspec
import orjson

from sources.errors import SyncError
from sources.tagbase.client import SOURCE
from sources.tagbase.settings import LOG_SUFFIXES, VERIFICATION_STATUSES

_MAGIC = b"\x1f\x8b\x08"  # a gzip member's first bytes (deflate)
_STEP = 1 << 16  # compressed bytes fed to the decoder at a time


@dataclass
class Chunk:
    """The new complete lines of one file, and where the file stands after them."""

    file: str  # path relative to the log folder
    first_line: int  # 1-based number of the first line in `lines`
    lines: List[bytes]
    offset: int  # bytes consumed after this chunk (gzip: the start of a member)
    reset: bool = False  # the file shrank and was read again from its start
    skip: int = 0  # gzip: decoded bytes of the member at `offset` already consumed
    broken: Dict[int, str] = field(default_factory=dict)  # index in `lines` -> why rejected

    def position(self) -> Dict[str, int]:
        """What the source stores for the file after this chunk."""
        return {"offset": self.offset, "lines": self.first_line - 1 + len(self.lines),
                "skip": self.skip}


def new_chunks(url: str, files: Dict[str, Dict[str, int]]) -> Iterator[Chunk]:
    """New content of every log file, in file name order; `files` is the stored position."""
    try:
        fs, root = fsspec.core.url_to_fs(url)
        if not fs.isdir(root):
            raise SyncError(f"{SOURCE}: verification_log_url {url} is not a folder")
        paths = sorted(p for p in fs.find(root) if p.endswith(LOG_SUFFIXES))
    except (OSError, ValueError) as exc:
        raise SyncError(f"{SOURCE}: cannot list verification_log_url {url}: {exc}") from None
    for path in paths:
        name = path[len(root):].lstrip("/")
        seen = files.get(name, {"offset": 0, "lines": 0})
        size = fs.size(path)
        if size == seen["offset"] and not seen.get("skip"):
            continue
        reset = size < seen["offset"]
        if reset:
            seen = {"offset": 0, "lines": 0}
        with fs.open(path, "rb") as f:
            f.seek(seen["offset"])
            data = f.read()
        if path.endswith(".gz"):
            chunk = _gzip_chunk(data, seen["offset"], seen.get("skip", 0))
        else:
            chunk = _plain_chunk(data, seen["offset"])
        if chunk.lines or (chunk.offset, chunk.skip) != (seen["offset"], seen.get("skip", 0)):
            chunk.file, chunk.first_line, chunk.reset = name, seen["lines"] + 1, reset
            yield chunk


def _plain_chunk(data: bytes, offset: int) -> Chunk:
    end = data.rfind(b"\n") + 1
    return Chunk("", 0, _split(data[:end]), offset + end)


def _split(text: bytes) -> List[bytes]:
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _gzip_chunk(data: bytes, offset: int, skip: int) -> Chunk:
    """The complete lines of the gzip members in `data` (read from `offset`), less the first
    `skip` decoded bytes; each torn member becomes one rejected line."""
    lines: List[bytes] = []
    broken: Dict[int, str] = {}
    view = memoryview(data)
    segment, pos = 0, 0  # where the text being gathered starts; after its last member
    text = bytearray()
    starts: List[Tuple[int, int]] = []  # (position in data, in text) of each member's start
    while pos < len(data):
        member = _member(view, pos)
        if member is not None:
            starts.append((pos, len(text)))
            pos, decoded = member
            text += decoded
            continue
        after = _next_member(view, pos + 1)
        if after is None:
            break  # still being written: left for the next run
        # Torn: the text so far ends with what of it decodes; its incomplete last line is
        # rejected, and the next member (the restarted writer's) starts a new line.
        text += _decodable(view[pos:after])
        tail = bytes(text[skip:])
        complete = tail.rfind(b"\n") + 1
        lines += _split(tail[:complete])
        lines.append(tail[complete:])
        broken[len(lines) - 1] = (f"truncated gzip member at byte offset {offset + pos}, "
                                  f"{after - pos} bytes skipped with the line they held")
        segment = pos = after
        text, starts, skip = bytearray(), [], 0
    end = text.rfind(b"\n") + 1
    if end <= skip:  # no complete line past the position: it stays
        stop = (segment, skip)
    elif end == len(text):
        stop = (pos, 0)
    else:  # resume inside the member holding the incomplete last line
        at, begins = next((a, t) for a, t in reversed(starts) if t <= end)
        stop = (at, end - begins)
    if end > skip:
        lines += _split(bytes(text[skip:end]))
    return Chunk("", 0, lines, offset + stop[0], skip=stop[1], broken=broken)


def _member(view: memoryview, pos: int) -> Optional[Tuple[int, bytes]]:
    """The complete gzip member at `pos`: (position after it, its text), or None."""
    decoder = zlib.decompressobj(wbits=31)
    out: List[bytes] = []
    at = pos
    try:
        while not decoder.eof and at < len(view):
            out.append(decoder.decompress(view[at:at + _STEP]))
            at += _STEP
    except zlib.error:
        return None
    if not decoder.eof:
        return None
    return min(at, len(view)) - len(decoder.unused_data), b"".join(out)


def _next_member(view: memoryview, start: int) -> Optional[int]:
    """Where the first complete member at or after `start` begins, if any."""
    data = view.obj
    assert isinstance(data, bytes)
    at = data.find(_MAGIC, start)
    while at != -1:
        if _member(view, at) is not None:
            return at
        at = data.find(_MAGIC, at + 1)
    return None


def _decodable(view: memoryview) -> bytes:
    """What the start of a torn member decodes to, up to its damage."""
    decoder = zlib.decompressobj(wbits=31)
    out: List[bytes] = []
    try:
        for at in range(0, len(view), 1024):
            out.append(decoder.decompress(view[at:at + 1024]))
    except zlib.error:
        pass
    return b"".join(out)


def parse_verification(line: bytes) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """A verification row from one log line, or None and why the line is not one."""
    if not line.strip():
        return None, None  # a blank line holds nothing to report
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, "not valid JSON"
    try:
        data = doc["data"]
        if data["type"] != "verifications" or not str(data["id"]).startswith("vrf_"):
            return None, "not a verification document"
        attrs, rel = data["attributes"], data["relationships"]
        status = attrs["status"]
        if status not in VERIFICATION_STATUSES:
            return None, f"unknown verification status {str(status)[:20]!r}"
        inserted = datetime.fromisoformat(str(attrs["inserted_at"]))
        if inserted.tzinfo is None:
            return None, "inserted_at has no time zone"
        return {"id": data["id"], "status": status, "inserted_at": inserted,
                "session_id": rel["session"]["data"]["id"],
                "tag_id": rel["tag"]["data"]["id"]}, None
    except (KeyError, TypeError):
        return None, "not a verification document"
    except ValueError:
        return None, "inserted_at is not an ISO 8601 time"

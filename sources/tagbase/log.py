"""Reading the integration's verification log incrementally.

The log is a folder (local path or any fsspec URL) of JSON Lines files, plain (`.jsonl`) or
gzip (`.jsonl.gz`). Files only grow and new files appear; lines are never rewritten. Per file
the source remembers how many bytes it has consumed and how many lines that was, and reads
only what lies past that offset. A file is consumed up to its last complete line (plain) or
its last complete gzip member (gzip: the writer appends one member per flush), so a line
being written while the source reads is left for the next run.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, Iterator, List, Optional, Tuple

import fsspec
import orjson

from sources.http import SyncError
from sources.tagbase.client import SOURCE
from sources.tagbase.settings import LOG_SUFFIXES, VERIFICATION_STATUSES


@dataclass
class Chunk:
    """The new complete lines of one file, and where the file stands after them."""

    file: str  # path relative to the log folder
    first_line: int  # 1-based number of the first line in `lines`
    lines: List[bytes]
    offset: int  # bytes consumed after this chunk
    reset: bool = False  # the file shrank and was read again from its start


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
        if size == seen["offset"]:
            continue
        reset = size < seen["offset"]
        if reset:
            seen = {"offset": 0, "lines": 0}
        with fs.open(path, "rb") as f:
            f.seek(seen["offset"])
            data = f.read()
        text, used = (_gzip_members(data) if path.endswith(".gz") else _complete_lines(data))
        if used == 0:
            continue
        lines = text.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        yield Chunk(name, seen["lines"] + 1, lines, seen["offset"] + used, reset)


def _complete_lines(data: bytes) -> Tuple[bytes, int]:
    end = data.rfind(b"\n") + 1
    return data[:end], end


def _gzip_members(data: bytes) -> Tuple[bytes, int]:
    """Decompress the complete gzip members at the start of `data`; (text, bytes used)."""
    out: List[bytes] = []
    used = 0
    while used < len(data):
        decoder = zlib.decompressobj(wbits=31)
        try:
            text = decoder.decompress(data[used:])
        except zlib.error:
            break  # a member being written, or damage: stop before it
        if not decoder.eof:
            break
        out.append(text)
        used = len(data) - len(decoder.unused_data)
    return b"".join(out), used


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

"""Tagbase simulator, per `shared/api/tagbase.md`, with the integration's verification log.

Two accounts own tags. Tags are created and configured later (some never). Phones scan tags:
a scan opens a session with a `pending` verification, and a second scan within the session's
10 minutes resolves it `valid`, or `invalid` for a replayed tag; some flows stop at `pending`.
A few tags are deleted. Every verification document the platform returns is appended, exactly
as received, to the verification log folder the way an integration would: gzip members
appended to the current `.jsonl.gz` file, a new file after `rotate_lines` lines, now and then a
line written twice. The log is shared by both accounts' integrations, so it also references
sessions and tags the demo key cannot read (404).

Two writer behaviours real log writers have, off by default, switched by attributes (and
seeded apart from the world, so switching them changes only the bytes on disk):

- `torn_rate`: chance that a flush dies mid-member, leaving a truncated gzip member at the end
  of the file; at the next flush the restarted writer writes the same lines again, from the
  start of the line it was in, as new members after the torn one.
- `split_rate`: chance that a flush is cut into several members at arbitrary bytes (block
  writers such as bgzip), lines split across members, and the last block now and then held
  back until the next flush (so the file can end mid-line).
"""

from __future__ import annotations

import gzip
import itertools
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import orjson

from sandbox.core import EventWorld, Request, Response, parse_iso_ms

MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
SESSION_WINDOW_MS = 10 * MIN  # a session is live for 10 minutes
JSONAPI = "application/vnd.api+json"
DEMO_KEY = "key_demo01:s3cr3t-tagbase-sandbox"
OTHER_KEY = "key_other02:an0ther-account-secret"
KEYS = {DEMO_KEY: "acc_demo", OTHER_KEY: "acc_other"}


def iso_us(us: int) -> str:
    """Epoch microseconds as ISO 8601 with six fractional digits and `Z`."""
    dt = datetime.fromtimestamp(us // 1_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{us % 1_000_000:06d}Z"


class TagbaseApi(EventWorld):
    """The Tagbase platform plus the integration writing its verification log.

    Args:
        start_ms: the clock's starting time.
        log_dir: the verification log folder (created if missing).
        seed: RNG seed.
        scans_per_day: mean scan flows per day (both accounts together).
        history_days: days simulated before `start_ms`.
        rotate_lines: lines per log file before the integration starts a new one.
        duplicate_rate: chance that a line is written twice (a retried write).
        torn_rate: chance that a flush leaves a torn member (see the module docstring).
        split_rate: chance that a flush is cut into members mid-line.
    """

    name = "tagbase"

    def __init__(self, start_ms: int, log_dir: Path, seed: int = 31,
                 scans_per_day: float = 400, history_days: float = 10,
                 rotate_lines: int = 1000, duplicate_rate: float = 0.01,
                 torn_rate: float = 0.0, split_rate: float = 0.0) -> None:
        super().__init__(start_ms - int(history_days * DAY), seed)
        self.torn_rate, self.split_rate = torn_rate, split_rate
        self.writer_rng = random.Random(seed + 2)
        self._held = b""  # bytes of whole lines not yet written (a block writer's buffer)
        self._head = b""  # the start of the line `_held` continues, already written
        self._restarting = False  # the last flush tore a member: this one writes again
        self.torn: List[Tuple[str, int]] = []  # (file name, byte offset) of each torn member
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.scans_per_day = scans_per_day
        self.rotate_lines = rotate_lines
        self.duplicate_rate = duplicate_rate
        self.tags: Dict[str, Dict[str, Any]] = {}
        self.sessions: Dict[str, Dict[str, Any]] = {}
        self.verifications: Dict[str, Dict[str, Any]] = {}
        self.owner: Dict[str, str] = {}  # tag id -> account id
        self.deleted: set = set()
        self._pending_lines: List[bytes] = []
        self._file_no, self._file_lines = 0, 0
        for n in range(12):  # every fourth tag belongs to the other account
            self._on_tag_new(schedule=False, account="acc_other" if n % 4 == 3 else "acc_demo")
        self._at(self.now_ms + 1, "tag_new")
        self._at(self.now_ms + 1, "scan")
        self._at(self.now_ms + 5 * DAY, "tag_delete")
        self.advance_to(start_ms)

    # -- clock ----------------------------------------------------------------------------
    def after_advance(self) -> None:
        """The integration flushes what it logged during the step: one gzip member per file."""
        self.flush_log()

    def _now_us(self) -> int:
        return self.now_ms * 1000 + self.rng.randint(0, 999)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{self.rng.getrandbits(64):016x}"

    # -- world ----------------------------------------------------------------------------
    def _on_tag_new(self, schedule: bool = True, account: Optional[str] = None) -> None:
        tag_id = self._id("tag")
        self.owner[tag_id] = account or ("acc_demo" if self.rng.random() < 0.85 else "acc_other")
        self.tags[tag_id] = {
            "protocol": self.rng.choice(["ntag_424_dna", "ntag_223_dna"]),
            "url": f"https://verify.example/t/{tag_id[4:]}", "status": "created",
            "configured_at": None, "inserted_at": iso_us(self._now_us())}
        if self.rng.random() < 0.8:
            self._at(self.now_ms + self.rng.randint(HOUR, 2 * DAY), "tag_configure", tag_id)
        if schedule:
            self._at(self.now_ms + self.rng.randint(2 * HOUR, 20 * HOUR), "tag_new")

    def _on_tag_configure(self, tag_id: str) -> None:
        if tag_id not in self.deleted:
            self.tags[tag_id].update(status="configured", configured_at=iso_us(self._now_us()))

    def _on_tag_delete(self) -> None:
        live = [t for t in self.tags if t not in self.deleted and self.owner[t] == "acc_demo"]
        if len(live) > 10:
            self.deleted.add(self.rng.choice(live))
        self._at(self.now_ms + self.rng.randint(3 * DAY, 8 * DAY), "tag_delete")

    def _on_scan(self) -> None:
        live = [t for t in self.tags if t not in self.deleted]
        tag_id = self.rng.choice(live)
        doc = self._verify(tag_id, None)
        session_id = doc["data"]["relationships"]["session"]["data"]["id"]
        self._log(doc)
        r = self.rng.random()
        if r < 0.9:  # a second scan within the window resolves the flow
            outcome = "valid" if r < 0.8 else "invalid"
            self._at(self.now_ms + self.rng.randint(5_000, SESSION_WINDOW_MS - 1000),
                     "second_scan", tag_id, session_id, outcome)
        gap = DAY / self.scans_per_day
        self._at(self.now_ms + 1 + int(self.rng.expovariate(1 / gap)), "scan")

    def _on_second_scan(self, tag_id: str, session_id: str, outcome: str) -> None:
        if tag_id not in self.deleted:
            self._log(self._verify(tag_id, session_id, outcome))

    def _verify(self, tag_id: str, session_id: Optional[str],
                outcome: str = "pending") -> Dict[str, Any]:
        """Record one scan; returns the verification document the platform answers with."""
        if session_id is None or session_id not in self.sessions or self._expired(session_id):
            session_id = self._id("ses")
            self.sessions[session_id] = {"inserted_at": iso_us(self._now_us()), "tag": tag_id}
            outcome = "pending"
        vrf_id = self._id("vrf")
        self.verifications[vrf_id] = {"status": outcome, "inserted_at": iso_us(self._now_us()),
                                      "session": session_id, "tag": tag_id}
        return self._verification_doc(vrf_id)

    def _expired(self, session_id: str) -> bool:
        opened = parse_iso_ms(self.sessions[session_id]["inserted_at"][:23] + "Z")
        return self.now_ms >= opened + SESSION_WINDOW_MS

    # -- the integration's log --------------------------------------------------------------
    def _log(self, doc: Dict[str, Any]) -> None:
        line = orjson.dumps(doc) + b"\n"
        self._pending_lines.append(line)
        if self.rng.random() < self.duplicate_rate:
            self._pending_lines.append(line)

    def flush_log(self, final: bool = False) -> None:
        """Append buffered lines to the current file (one gzip member unless the writer
        behaviours say otherwise), rotating as needed; `final` writes held-back bytes too."""
        lines, self._pending_lines = self._pending_lines, []
        while lines:
            if self._file_no == 0 or self._file_lines >= self.rotate_lines:
                self._write(b"", final=True)  # a block writer closes its file whole
                self._file_no, self._file_lines = self._file_no + 1, 0
            room = self.rotate_lines - self._file_lines
            chunk, lines = lines[:room], lines[room:]
            self._file_lines += len(chunk)
            if not self._write(b"".join(chunk), final=final):
                self._file_lines -= len(chunk)  # torn: written again, to this file
                self._pending_lines.extend(lines)
                return
        if final:
            self._write(b"", final=True)

    def _write(self, data: bytes, final: bool) -> bool:
        """Append `data` (whole lines) to the current file; False if the write was torn."""
        buf, self._held = self._held + data, b""
        if not buf:
            return True
        w, restarting = self.writer_rng, self._restarting
        self._restarting = False
        cuts: List[int] = []
        if self.split_rate and len(buf) > 1 and w.random() < self.split_rate:
            cuts = sorted(w.sample(range(1, len(buf)), min(3, len(buf) - 1)))
            if not final and w.random() < 0.5:  # the last block waits for more lines
                buf, self._held = buf[:cuts[-1]], buf[cuts[-1]:]
                cuts.pop()
        bounds = [0, *cuts, len(buf)]
        torn = (w.randrange(len(bounds) - 1) if self.torn_rate and data and not restarting
                and w.random() < self.torn_rate else None)
        with open(self.log_file(), "ab") as f:
            for n, (lo, hi) in enumerate(itertools.pairwise(bounds)):
                member = gzip.compress(buf[lo:hi], mtime=0)
                if n == torn:
                    self.torn.append((self.log_file().name, f.tell()))
                    f.write(member[:w.randint(1, len(member) - 1)])
                    # restarted, the writer sends again from the start of the line it was in
                    text = self._head + buf + self._held
                    cut = len(self._head) + lo
                    again = text[text.rfind(b"\n", 0, cut) + 1:]
                    self._pending_lines[:0] = again.splitlines(keepends=True)
                    self._held = self._head = b""
                    self._restarting = True
                    return False
                f.write(member)
        written = self._head + buf
        self._head = written[written.rfind(b"\n") + 1:]
        return True

    def log_file(self) -> Path:
        """The file the integration is appending to now."""
        return self.log_dir / f"verifications-{max(self._file_no, 1):06d}.jsonl.gz"

    # -- truth for tests ----------------------------------------------------------------------
    def visible(self, account: str = "acc_demo") -> Dict[str, set]:
        """Ids the account's key can read (tags it owns that are not deleted, their sessions)."""
        tags = {t for t, a in self.owner.items() if a == account and t not in self.deleted}
        sessions = {s for s, rec in self.sessions.items() if rec["tag"] in tags}
        return {"tags": tags, "sessions": sessions}

    # -- HTTP -------------------------------------------------------------------------------
    def error(self, status: int, code: str, message: str) -> Response:
        titles = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                  422: "Unprocessable Entity", 429: "Too Many Requests"}
        body = {"errors": [{"status": str(status), "title": titles.get(status, "Server Error"),
                            "detail": message}]}
        return Response(status, orjson.dumps(body), {"Content-Type": JSONAPI})

    def route(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        account = KEYS.get(auth[7:]) if auth.startswith("Bearer ") else None
        if account is None:
            return self.error(401, "unauthorized", "Missing, invalid or revoked API key")
        parts = request.path.strip("/").split("/")
        if parts[:2] != ["api", "v1"] or len(parts) < 4:
            return self.error(404, "not_found", f"No route {request.method} {request.path}")
        kind, rid = parts[2], parts[3]
        if request.method == "GET" and len(parts) == 4 and kind == "tags":
            if not self._owns(account, rid):
                return self.error(404, "not_found", "Tag not found")
            return self._doc({"type": "tags", "id": rid, "attributes": dict(self.tags[rid])})
        if request.method == "GET" and len(parts) == 4 and kind == "sessions":
            session = self.sessions.get(rid)
            if session is None or not self._owns(account, session["tag"]):
                return self.error(404, "not_found", "Session not found")
            return self._doc({"type": "sessions", "id": rid,
                              "attributes": {"inserted_at": session["inserted_at"]},
                              "relationships": {"tag": {"data": {"type": "tags",
                                                                 "id": session["tag"]}}}})
        if request.method == "POST" and parts[2:] == ["tags", rid, "verifications"]:
            return self._post_verification(request, account, rid)
        return self.error(404, "not_found", f"No route {request.method} {request.path}")

    def _post_verification(self, request: Request, account: str, tag_id: str) -> Response:
        if request.headers.get("content-type", "").split(";")[0] != JSONAPI:
            return self.error(400, "bad_request", f"Content-Type must be {JSONAPI}")
        if not self._owns(account, tag_id):
            return self.error(404, "not_found", "Tag not found")
        try:
            body = orjson.loads(request.body or b"{}")
            rel = (body.get("data") or {}).get("relationships") or {}
            session_id = ((rel.get("session") or {}).get("data") or {}).get("id")
        except (orjson.JSONDecodeError, AttributeError):
            return self.error(422, "invalid", "Body must be a JSON:API document")
        outcome = "valid" if session_id in self.sessions else "pending"
        doc = self._verify(tag_id, session_id, outcome)
        return Response(201, orjson.dumps(doc), {"Content-Type": JSONAPI})

    def _owns(self, account: str, tag_id: str) -> bool:
        return self.owner.get(tag_id) == account and tag_id not in self.deleted

    def _doc(self, data: Dict[str, Any]) -> Response:
        return Response(200, orjson.dumps({"data": data}), {"Content-Type": JSONAPI})

    def _verification_doc(self, vrf_id: str) -> Dict[str, Any]:
        v = self.verifications[vrf_id]
        return {"data": {"type": "verifications", "id": vrf_id,
                         "attributes": {"status": v["status"], "inserted_at": v["inserted_at"]},
                         "relationships": {
                             "session": {"data": {"type": "sessions", "id": v["session"]}},
                             "tag": {"data": {"type": "tags", "id": v["tag"]}}}}}

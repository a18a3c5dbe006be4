"""Mobile Next simulator, per `shared/api/mobilenext.md`.

Sessions are created in bursts that share one millisecond (a test run starting many devices),
released minutes to 24 hours later, and now and then deleted, all on the virtual clock.
"""

from __future__ import annotations

import bisect
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import orjson

from sandbox.core import Api, Request, Response, iso_ms, parse_iso_ms

DAY_MS = 86_400_000
MAX_HOLD_MS = DAY_MS  # the platform releases a device automatically at 24 hours

DEMO_KEY = "mob_sandbox_demo_key_5f2c9a"
OTHER_KEY = "mob_sandbox_other_key_81d0e4"

DEVICES = {
    "ios": [("real", "iPhone 15 Pro", "17.5"), ("simulator", "iPhone 14", "16.4"),
            ("real", "iPad Air", "17.2")],
    "android": [("real", "Pixel 8", "14"), ("emulator", "Pixel 6 API 33", "13"),
                ("real", "Galaxy S23", "14")],
}


@dataclass
class Org:
    id: str
    name: Optional[str]
    type: str
    created_ms: int
    sessions_per_day: float
    deletions_per_day: float
    created: List[int] = field(default_factory=list)  # createdAt ms, ascending
    ids: List[str] = field(default_factory=list)  # parallel to `created`
    by_id: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    next_burst_ms: int = 0
    next_delete_ms: int = 0


class MobileNextApi(Api):
    """The Mobile Next API with seeded organizations, keys and sessions.

    Args:
        start_ms: the clock's starting time.
        seed: RNG seed; the same seed gives the same world.
        sessions_per_day: mean sessions created per day in each organization.
        history_days: days of history generated before `start_ms`.
        deletions_per_day: mean sessions deleted per day in each organization.
        teams: extra organizations `org_team01`... the demo key reads, each as busy as
            `org_acme` (for benchmarks of many partitions).
    """

    name = "mobilenext"

    def __init__(self, start_ms: int, seed: int = 7, sessions_per_day: float = 300,
                 history_days: float = 30, deletions_per_day: float = 2, teams: int = 0) -> None:
        super().__init__(start_ms - int(history_days * DAY_MS), seed)
        t0 = self.now_ms
        self.orgs = {
            o.id: o for o in [
                Org("org_acme", "Acme Mobile QA", "team", t0 - 90 * DAY_MS,
                    sessions_per_day, deletions_per_day),
                Org("org_beta", "Beta Labs", "team", t0 - 60 * DAY_MS,
                    sessions_per_day * 0.6, deletions_per_day),
                Org("org_solo", None, "personal", t0 - 30 * DAY_MS,
                    sessions_per_day * 0.2, deletions_per_day / 2),
            ]
        }
        # key -> (bound org, {org: role})
        self.keys = {
            DEMO_KEY: ("org_acme", {"org_acme": "readwrite", "org_beta": "read"}),
            OTHER_KEY: ("org_solo", {"org_solo": "readwrite"}),
        }
        for n in range(1, teams + 1):
            team = Org(f"org_team{n:02d}", f"Team {n}", "team", t0 - 30 * DAY_MS,
                       sessions_per_day, deletions_per_day)
            self.orgs[team.id] = team
            self.keys[DEMO_KEY][1][team.id] = "read"
        for org in self.orgs.values():
            org.next_burst_ms = t0 + self._gap(org.sessions_per_day)
            org.next_delete_ms = t0 + self._gap(org.deletions_per_day)
        self.advance_to(start_ms)

    # -- world ----------------------------------------------------------------------------
    def _gap(self, per_day: float) -> int:
        if per_day <= 0:
            return 10**15
        bursts_per_day = per_day / self._mean_burst
        return max(1, int(self.rng.expovariate(bursts_per_day / DAY_MS)))

    _mean_burst = 3.6  # mean of _burst_size()

    def _burst_size(self) -> int:
        if self.rng.random() < 0.8:
            return 1
        return self.rng.randint(2, 14) if self.rng.random() < 0.8 else self.rng.randint(15, 60)

    def advance_to(self, target_ms: int) -> None:
        for org in self.orgs.values():
            while min(org.next_burst_ms, org.next_delete_ms) <= target_ms:
                if org.next_burst_ms <= org.next_delete_ms:
                    self.create_sessions(org.id, org.next_burst_ms, self._burst_size())
                    org.next_burst_ms += self._gap(org.sessions_per_day)
                else:
                    if org.ids:
                        self.delete_session(org.id, self.rng.choice(org.ids))
                    org.next_delete_ms += self._gap(org.deletions_per_day)
        self.now_ms = max(self.now_ms, target_ms)

    def create_sessions(self, org_id: str, at_ms: int, n: int) -> List[str]:
        """Create `n` sessions in one millisecond (a test run starting n devices)."""
        org = self.orgs[org_id]
        user = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        created = []
        for _ in range(n):
            platform = self.rng.choice(["ios", "android"])
            kind, name, os_version = self.rng.choice(DEVICES[platform])
            r = self.rng.random()
            hold = (self.rng.randint(5, 120) * 60_000 if r < 0.7
                    else self.rng.randint(2, 12) * 3_600_000 if r < 0.95 else MAX_HOLD_MS)
            sid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            org.by_id[sid] = {
                "id": sid, "organization": org_id, "user": user,
                "device": {"id": f"dev_{self.rng.getrandbits(40):010x}", "platform": platform,
                           "type": kind, "name": name, "osVersion": os_version},
                "createdAt": iso_ms(at_ms), "_created": at_ms, "_released": at_ms + hold,
            }
            i = bisect.bisect_right(org.created, at_ms)
            org.created.insert(i, at_ms)
            org.ids.insert(i, sid)
            created.append(sid)
        return created

    def delete_session(self, org_id: str, sid: str) -> None:
        org = self.orgs[org_id]
        record = org.by_id.pop(sid)
        i = bisect.bisect_left(org.created, record["_created"])
        while org.ids[i] != sid:
            i += 1
        del org.created[i], org.ids[i]

    def render(self, record: Dict[str, Any]) -> Dict[str, Any]:
        """A session as the API shows it now (releasedAt only once the clock passed it)."""
        out = {k: v for k, v in record.items() if not k.startswith("_")}
        released = record["_released"]
        out["releasedAt"] = iso_ms(released) if released <= self.now_ms else None
        return out

    def truth(self, org_id: str) -> List[Dict[str, Any]]:
        """Every live session of an org as the API would return it now."""
        org = self.orgs[org_id]
        return [self.render(org.by_id[sid]) for sid in org.ids]

    # -- HTTP -----------------------------------------------------------------------------
    def route(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        key = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if key not in self.keys:
            return self.error(401, "unauthorized", "Missing or invalid API key")
        bound, roles = self.keys[key]  # type: ignore[index]
        path = request.path
        if path == "/api/v1/organizations":
            return Response.json(200, {"object": "list", "data": [
                {"id": o.id, "name": o.name, "type": o.type, "role": roles[o.id],
                 "createdAt": iso_ms(o.created_ms)}
                for o in self.orgs.values() if o.id in roles]})
        org_id = request.headers.get("x-organization-id") or bound
        if not (path == "/api/v1/sessions" or path.startswith("/api/v1/sessions/")):
            return self.error(404, "not_found", f"No route {path}")
        if org_id not in roles:
            return self.error(403, "forbidden", f"Not a member of organization {org_id}")
        org = self.orgs[org_id]
        if path != "/api/v1/sessions":
            record = org.by_id.get(path.rsplit("/", 1)[-1])
            if record is None:
                return self.error(404, "not_found", "Session not found")
            return Response.json(200, self.render(record))
        return self._list(org, request)

    def _list(self, org: Org, request: Request) -> Response:
        raw_limit = request.arg("limit")
        try:
            limit = 100 if raw_limit is None else int(raw_limit)
        except ValueError:
            return self.error(400, "invalid_request", "limit must be an integer")
        if not 1 <= limit <= 500:
            return self.error(400, "invalid_request", "limit must be between 1 and 500")
        before = request.arg("before")
        end = len(org.created)
        if before is not None:
            try:
                end = bisect.bisect_left(org.created, parse_iso_ms(before))
            except ValueError:
                return self.error(400, "invalid_request", "before must be an RFC 3339 timestamp")
        start = max(0, end - limit)
        data = b",".join(self._rendered(org.by_id[org.ids[i]])
                         for i in range(end - 1, start - 1, -1))
        body = b'{"object":"list","data":[' + data + b"]"
        if start > 0:  # the last session's createdAt, as the API's cursor
            body += b',"nextCursor":"' + iso_ms(org.created[start]).encode() + b'"'
        return Response(200, body + b"}", {"Content-Type": "application/json"})

    def _rendered(self, record: Dict[str, Any]) -> bytes:
        """`render(record)` as JSON; cached once the session is released (it is final then)."""
        text = record.get("_json")
        if text is None:
            text = orjson.dumps(self.render(record))
            if record["_released"] <= self.now_ms:
                record["_json"] = text
        return text  # type: ignore[no-any-return]

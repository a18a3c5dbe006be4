"""sessionvision simulator, per `shared/api/sessionvision.md`.

Per project, people visit: each visit is a session of a few events seconds to minutes apart
(a gap of 30 minutes would start a new session). Every event is processed, and so becomes
visible, after a delay: seconds for most, hours for some, up to 48 hours for offline mobile
clients. Processing an event is what changes the rest of the world: the session it belongs
to grows (end time, duration, counts, bounce; a late event extends it), its person is seen
(`last_seen`), identified (`$identify`) or given properties, and the event and property
definitions learn from it. Action definitions are created, edited, archived and deleted on
their own schedule. Everything happens on the virtual clock.

`Behaviour` switches on what the contract allows but the default world never does: awkward
distinct ids, persons changed with no event, sessions finalised by their timeout, and a
session moved during paging so that a list shows it twice.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import orjson

from sandbox.core import EventWorld, Request, Response, iso_ms, update_switches

MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
MAX_DELAY_MS = 48 * HOUR
SESSION_TIMEOUT_MS = 30 * MIN  # a session is final 30 minutes after its last event
SILENT_TICK_MS = 10 * MIN  # how often the platform may change persons without an event
AWKWARD = ["a/b ", "q?x=1&y=2 ", "#top ", "100% ", "two  spaces ", "%2F%3F "]  # id prefixes
DEFAULT_WINDOW_MS = 7 * DAY  # lists without date_from return only the last 7 days
DEMO_TOKEN = "sv_pat_sandbox_demo_0c1d2e3f"
PROJECTS = ("4021", "4022")  # the demo token reads both
OTHER_PROJECT = "4099"  # exists, but the demo token may not read it
PREFIX = "/api/v1/projects/"
URLS = ["/", "/pricing", "/docs", "/blog", "/signup", "/checkout", "/account"]
BROWSERS, DEVICES = ["Chrome", "Safari", "Firefox", "Edge"], ["Desktop", "Mobile", "Tablet"]
COUNTRIES, REFERRERS = ["NZ", "AU", "US", "GB", "DE"], ["$direct", "https://google.com",
                                                         "https://news.example"]
CUSTOM = {"$pageview": [], "$autocapture": ["element", "text"],
          "signup_clicked": ["button_id"], "checkout_started": ["plan", "amount"],
          "purchase_completed": ["plan", "amount", "coupon"]}


@dataclass
class Behaviour:
    """What the contract allows and the default world never does; all off by default.

    Each draws from the world's seeded RNG only when on, so a world with all of them off is
    the same world as before they existed.
    """

    awkward_ids: float = 0.0  # share of new persons whose distinct_id holds / ? # % spaces
    silent_changes: float = 0.0  # persons per project per hour identified or given
    # properties through the platform, with no event
    finalise_sessions: bool = False  # exit_url and is_bounce stay null until the session's
    # inactivity timeout has passed (30 minutes after its last event), then are set
    shift_sessions: float = 0.0  # per sessions-list page asked with a cursor: chance that a
    # late event moves an already-listed session's start_time past the cursor (listed twice)

    def update(self, **changes: Any) -> None:
        update_switches(self, "behaviour", changes)


@dataclass
class Project:
    id: str
    visits_per_day: float
    events: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # visible, by id
    event_keys: List[Tuple[int, str]] = field(default_factory=list)  # (ts, id) of visible
    sessions: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    session_urls: Dict[str, List[Tuple[int, str]]] = field(default_factory=dict)
    persons: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # by distinct_id
    person_order: List[str] = field(default_factory=list)  # distinct ids by creation
    event_times: Dict[str, List[int]] = field(default_factory=dict)  # name -> visible ts
    properties: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    actions: Dict[int, Dict[str, Any]] = field(default_factory=dict)
    dirty: bool = False  # event_keys / event_times need sorting
    session_order: Optional[List[Tuple[int, str]]] = None  # (start, id) ascending, cached
    rendered: Dict[str, bytes] = field(default_factory=dict)  # event id -> its JSON, cached


class SessionVisionApi(EventWorld):
    """The sessionvision API with two readable projects and a late-arriving event stream.

    Args:
        start_ms: the clock's starting time.
        seed: RNG seed.
        visits_per_day: mean visits (sessions) per day in the first project (the second
            gets half); a visit has 1 to 12 events.
        history_days: days simulated before `start_ms`.
        late_share: share of events processed hours (up to 48) after they happened.
        behaviour: switches for contract-allowed behaviours (see `Behaviour`); can also be
            changed later through `self.behaviour.update(...)`.
    """

    name = "sessionvision"

    def __init__(self, start_ms: int, seed: int = 41, visits_per_day: float = 300,
                 history_days: float = 14, late_share: float = 0.05,
                 behaviour: Optional[Behaviour] = None) -> None:
        super().__init__(start_ms - int(history_days * DAY), seed)
        self.late_share = late_share
        self.behaviour = behaviour or Behaviour()
        self.shifted: List[str] = []  # sessions a `shift_sessions` late event moved
        self.projects = {pid: Project(pid, visits_per_day * (1 if i == 0 else 0.5))
                         for i, pid in enumerate(PROJECTS + (OTHER_PROJECT,))}
        self.tokens = {DEMO_TOKEN: set(PROJECTS)}
        self._action_ids = 100
        for project in self.projects.values():
            for _ in range(3):
                self._on_action_change(project.id, schedule=False)
            self._at(self.now_ms + 1, "visit", project.id)
            self._at(self.now_ms + 6 * HOUR, "action_change", project.id)
            self._at(self.now_ms + SILENT_TICK_MS, "silent", project.id)
        self.advance_to(start_ms)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # -- world: visits and their events -----------------------------------------------------
    def _on_visit(self, pid: str) -> None:
        project = self.projects[pid]
        rng = self.rng
        persons = project.person_order
        if persons and rng.random() < 0.7:  # a returning visitor
            distinct_id = persons[int(len(persons) * rng.random() ** 0.5)]
            person = project.persons[distinct_id]
            traits = (person["country"], person["device_type"], person["browser"])
        else:
            distinct_id = self._uuid()
            if self.behaviour.awkward_ids and rng.random() < self.behaviour.awkward_ids:
                distinct_id = rng.choice(AWKWARD) + distinct_id
            traits = (rng.choice(COUNTRIES), rng.choice(DEVICES), rng.choice(BROWSERS))
        session_id, ts = self._uuid(), self.now_ms
        late = rng.random() < self.late_share  # an offline client flushes the visit late
        names = ["$pageview"] + rng.choices(list(CUSTOM), k=rng.randint(0, 11))
        if rng.random() < 0.1:
            names.insert(1, "$identify")
        referrer = rng.choice(REFERRERS)
        for name in names:
            props: Dict[str, Any] = {"$current_url": f"https://app.example{rng.choice(URLS)}",
                                     "$browser": traits[2], "$device_type": traits[1],
                                     "$country": traits[0], "$referrer": referrer}
            for key in CUSTOM.get(name, []):
                props[key] = (rng.randint(1, 500) if key == "amount"
                              else f"{key}-{rng.randint(1, 9)}")
            if rng.random() < 0.3:  # open-ended custom keys
                props[f"exp_{rng.randint(1, 400)}"] = rng.choice(["a", "b", True, 3])
            if name == "$identify":
                props["$set"] = {"email": f"user{rng.randint(1, 10**6)}@mail.example",
                                 "name": f"User {rng.randint(1, 999)}",
                                 "plan": rng.choice(["free", "pro", "team"])}
            event = {"id": self._uuid(), "event": name, "distinct_id": distinct_id,
                     "session_id": session_id, "timestamp": iso_ms(ts), "properties": props}
            delay = (rng.randint(2 * HOUR, MAX_DELAY_MS) if late
                     else rng.randint(500, 20_000))
            self._at(ts + delay, "process", pid, event, ts)
            ts += rng.randint(2_000, 10 * MIN)
        gap = DAY / project.visits_per_day
        self._at(self.now_ms + 1 + int(rng.expovariate(1 / gap)), "visit", pid)

    def _on_process(self, pid: str, event: Dict[str, Any], ts: int) -> None:
        """The platform processes one event: it becomes visible and updates what it touches."""
        project = self.projects[pid]
        project.events[event["id"]] = event
        project.event_keys.append((ts, event["id"]))
        project.event_times.setdefault(event["event"], []).append(ts)
        project.dirty = True
        props = event["properties"]
        self._see_person(project, event, ts)
        self._grow_session(project, event, ts)
        for key, value in props.items():
            kind = ("Boolean" if isinstance(value, bool) else "Numeric"
                    if isinstance(value, (int, float)) else "String")
            definition = project.properties.setdefault(key, {"key": key, "type": kind,
                                                             "example_values": []})
            if len(definition["example_values"]) < 3 and value not in definition["example_values"]:
                definition["example_values"].append(value)

    def _see_person(self, project: Project, event: Dict[str, Any], ts: int) -> None:
        did, props = event["distinct_id"], event["properties"]
        person = project.persons.get(did)
        if person is None:
            person = project.persons[did] = {
                "id": self._uuid(), "distinct_id": did, "user_id": None, "anonymous_id": did,
                "properties": {}, "country": props["$country"],
                "device_type": props["$device_type"], "browser": props["$browser"],
                "created_at": iso_ms(self.now_ms), "last_seen": iso_ms(ts)}
            project.person_order.append(did)
        if iso_ms(ts) > person["last_seen"]:
            person["last_seen"] = iso_ms(ts)
        if event["event"] == "$identify":
            person["user_id"] = person["user_id"] or f"usr_{did[:8]}"
            person["properties"] = {**person["properties"], **props["$set"]}

    def _grow_session(self, project: Project, event: Dict[str, Any], ts: int) -> None:
        sid, props = event["session_id"], event["properties"]
        urls = project.session_urls.setdefault(sid, [])
        session = project.sessions.get(sid)
        if session is None:
            session = project.sessions[sid] = {
                "id": sid, "distinct_id": event["distinct_id"], "start_ms": ts, "end_ms": ts,
                "pageview_count": 0, "event_count": 0, "country": props["$country"],
                "device_type": props["$device_type"], "browser": props["$browser"]}
        project.session_order = None
        session["start_ms"] = min(session["start_ms"], ts)
        session["end_ms"] = max(session["end_ms"], ts)
        session["event_count"] += 1
        if event["event"] == "$pageview":
            session["pageview_count"] += 1
        urls.append((ts, props["$current_url"]))

    def _on_silent(self, pid: str) -> None:
        """The platform identifies persons or sets their properties with no event (an API
        call, a CRM import): nothing in the event stream or any list order says so."""
        self._at(self.now_ms + SILENT_TICK_MS, "silent", pid)
        rate = self.behaviour.silent_changes * SILENT_TICK_MS / HOUR
        project, rng = self.projects[pid], self.rng
        if not rate or not project.person_order:
            return
        for _ in range(int(rate) + (rng.random() < rate % 1)):
            person = project.persons[rng.choice(project.person_order)]
            if person["user_id"] is None and rng.random() < 0.5:
                person["user_id"] = f"usr_silent_{rng.getrandbits(32):08x}"
            person["properties"] = {**person["properties"],
                                    "plan": rng.choice(["free", "pro", "team", "enterprise"]),
                                    "crm_score": rng.randint(1, 100)}

    def _shift_session(self, project: Project, after: List[Any]) -> None:
        """A late event for a session already listed before `after` (the cursor) moves its
        `start_time` just past the cursor, so a later page lists it again."""
        at = int(after[0]) - self.rng.randint(1_000, MIN)
        if at < self.now_ms - MAX_DELAY_MS + MIN:
            return  # an event this old can no longer arrive
        order = project.session_order or []
        listed = order[bisect.bisect_right(order, tuple(after)):]
        if not listed:
            return
        _, sid = listed[self.rng.randrange(min(len(listed), 50))]
        session = project.sessions[sid]
        event = {"id": self._uuid(), "event": "$pageview", "distinct_id": session["distinct_id"],
                 "session_id": sid, "timestamp": iso_ms(at),
                 "properties": {"$current_url": f"https://app.example{URLS[0]}",
                                "$browser": session["browser"],
                                "$device_type": session["device_type"],
                                "$country": session["country"], "$referrer": "$direct"}}
        self._on_process(project.id, event, at)
        self.shifted.append(sid)

    # -- world: action definitions ---------------------------------------------------------
    def _on_action_change(self, pid: str, schedule: bool = True) -> None:
        actions, rng, now = self.projects[pid].actions, self.rng, iso_ms(self.now_ms)
        live = [a for a in actions.values() if not a["archived"]]
        r = rng.random()
        if r < 0.35 or len(live) < 2:
            self._action_ids += 1
            actions[self._action_ids] = {
                "id": self._action_ids, "name": f"Action {self._action_ids}",
                "description": "", "archived": False,
                "steps": [{"event": rng.choice(list(CUSTOM)), "url": rng.choice(URLS)}],
                "created_at": now, "updated_at": now}
        elif r < 0.6:
            action = rng.choice(live)
            action.update(description=f"edited {now}", updated_at=now)
        elif r < 0.8:
            rng.choice(live).update(archived=True, updated_at=now)
        else:
            del actions[rng.choice(list(actions))]
        if schedule:
            self._at(self.now_ms + rng.randint(2 * HOUR, 10 * HOUR), "action_change", pid)

    # -- records as the API shows them ---------------------------------------------------------
    def session_record(self, project: Project, sid: str) -> Dict[str, Any]:
        s = project.sessions[sid]
        urls = sorted(project.session_urls[sid])
        duration = (s["end_ms"] - s["start_ms"]) // 1000
        final = (not self.behaviour.finalise_sessions
                 or self.now_ms >= s["end_ms"] + SESSION_TIMEOUT_MS)
        return {"id": sid, "distinct_id": s["distinct_id"], "start_time": iso_ms(s["start_ms"]),
                "end_time": iso_ms(s["end_ms"]), "duration": duration,
                "pageview_count": s["pageview_count"], "event_count": s["event_count"],
                "is_bounce": (s["pageview_count"] <= 1 and s["event_count"] <= 1
                              if final else None),
                "entry_url": urls[0][1], "exit_url": urls[-1][1] if final else None,
                "country": s["country"],
                "device_type": s["device_type"], "browser": s["browser"]}

    def event_definition(self, project: Project, name: str) -> Dict[str, Any]:
        times = project.event_times[name]
        return {"name": name, "volume_30d": len(times) - bisect.bisect_left(
                    times, self.now_ms - 30 * DAY), "last_seen": iso_ms(times[-1])}

    def _sorted(self, project: Project) -> None:
        if project.dirty:
            project.event_keys.sort()
            for times in project.event_times.values():
                times.sort()
            project.dirty = False

    # -- truth for tests ----------------------------------------------------------------------
    def truth(self, pid: str, kind: str) -> List[Dict[str, Any]]:
        """Every record of a kind the API holds now (visible events only; all of history)."""
        project = self.projects[pid]
        self._sorted(project)
        if kind == "events":
            return [dict(e) for e in project.events.values()]
        if kind == "sessions":
            return [self.session_record(project, s) for s in project.sessions]
        if kind == "persons":
            return [dict(p) for p in project.persons.values()]
        if kind == "event_definitions":
            return [self.event_definition(project, n) for n in sorted(project.event_times)]
        if kind == "property_definitions":
            return [dict(project.properties[k]) for k in sorted(project.properties)]
        if kind == "action_definitions":
            return [dict(a) for a in project.actions.values()]
        raise KeyError(kind)

    # -- HTTP -------------------------------------------------------------------------------
    def error(self, status: int, code: str, message: str) -> Response:
        codes = {400: "INVALID_PARAMETER", 401: "NOT_AUTHENTICATED", 403: "NOT_AUTHORIZED",
                 404: "NOT_FOUND", 422: "VALIDATION_ERROR", 429: "RATE_LIMITED"}
        return Response.json(status, {"error": message, "code": codes.get(status, "INTERNAL")})

    def route(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        readable = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if readable is None:
            return self.error(401, "", "Missing or invalid authentication")
        if not request.path.startswith(PREFIX):
            return self.error(404, "", f"No route {request.path}")
        parts = request.segments[len(PREFIX.strip("/").split("/")):]
        if not parts:
            return self.error(404, "", f"No route {request.path}")
        pid, rest = parts[0], parts[1:]
        if pid not in self.projects:
            return self.error(404, "", f"Project {pid} not found")
        if pid not in readable:
            return self.error(403, "", f"Insufficient permissions for project {pid}")
        project = self.projects[pid]
        self._sorted(project)
        try:
            return self._route_project(project, rest, request)
        except _Invalid as exc:
            return self.error(400, "", str(exc))

    def _route_project(self, project: Project, rest: List[str], request: Request) -> Response:
        if rest == ["events"]:
            return self._events(project, request)
        if rest == ["sessions"]:
            return self._sessions(project, request)
        if rest == ["persons"]:
            return self._persons(project, request)
        if rest == ["event_definitions"]:
            return self._page(request, _ascending([
                ([n], self.event_definition(project, n)) for n in sorted(project.event_times)]))
        if rest == ["property_definitions"]:
            return self._page(request, _ascending([
                ([k], project.properties[k]) for k in sorted(project.properties)]))
        if rest == ["action_definitions"]:
            archived = request.arg("include_archived") == "true"
            return self._page(request, _ascending([
                ([a["id"]], a) for _, a in sorted(project.actions.items())
                if archived or not a["archived"]]))
        if len(rest) == 2:
            found = {"events": lambda i: project.events.get(i),
                     "sessions": lambda i: (self.session_record(project, i)
                                            if i in project.sessions else None),
                     "persons": lambda i: project.persons.get(i),
                     "action_definitions": lambda i: project.actions.get(
                         int(i) if i.isdigit() else -1)}.get(rest[0], lambda i: None)(rest[1])
            if found is None:
                return self.error(404, "", f"{rest[0][:-1].capitalize()} not found")
            return Response.json(200, found)
        return self.error(404, "", f"No route {request.path}")

    def _window(self, request: Request) -> Tuple[int, int]:
        date_from, date_to = request.arg("date_from"), request.arg("date_to")
        lo = _parse_time(date_from, "date_from") if date_from else self.now_ms - DEFAULT_WINDOW_MS
        hi = _parse_time(date_to, "date_to") if date_to else 2**62
        return lo, hi

    def _events(self, project: Project, request: Request) -> Response:
        lo, hi = self._window(request)
        checks = [(k, v) for k in ("event", "distinct_id", "session_id")
                  if (v := request.arg(k)) is not None]
        keys = project.event_keys
        start, end = bisect.bisect_left(keys, (lo, "")), bisect.bisect_left(keys, (hi, ""))

        def rows(after: Optional[List[Any]]) -> Iterator[Tuple[Any, bytes]]:
            top = end if after is None else min(end, bisect.bisect_left(keys, tuple(after)))
            for k in range(top - 1, start - 1, -1):
                event = project.events[keys[k][1]]
                if all(event[f] == v for f, v in checks):
                    # events never change once visible: each is rendered to JSON once
                    text = project.rendered.get(event["id"])
                    if text is None:
                        text = project.rendered[event["id"]] = orjson.dumps(event)
                    yield keys[k], text
        return self._page(request, rows)

    def _sessions(self, project: Project, request: Request) -> Response:
        lo, hi = self._window(request)
        filters: List[Callable[[Dict[str, Any]], bool]] = []
        for name in ("distinct_id", "entry_url", "country", "device_type", "browser"):
            value = request.arg(name)
            if value is not None:
                filters.append(_equals(name, value))
        for name, op in (("min_duration", int.__ge__), ("max_duration", int.__le__)):
            value = request.arg(name)
            if value is not None:
                filters.append(_compare("duration", op, _parse_int(value, name)))
        if request.arg("is_bounce") is not None:
            want = request.arg("is_bounce") == "true"
            filters.append(lambda s: s["is_bounce"] == want)
        if project.session_order is None:
            project.session_order = sorted((s["start_ms"], sid)
                                           for sid, s in project.sessions.items())
        shift = self.behaviour.shift_sessions
        if shift and request.arg("cursor") and self.rng.random() < shift:
            after = _cursor_key(request.arg("cursor") or "")
            if after is not None:
                self._shift_session(project, after)
                project.session_order = sorted((s["start_ms"], sid)
                                               for sid, s in project.sessions.items())
        order = project.session_order
        chosen = order[bisect.bisect_left(order, (lo, "")):bisect.bisect_left(order, (hi, ""))]

        def rows(after: Optional[List[Any]]) -> Iterator[Tuple[Any, Dict[str, Any]]]:
            top = len(chosen) if after is None else bisect.bisect_left(chosen, tuple(after))
            for k in range(top - 1, -1, -1):
                record = self.session_record(project, chosen[k][1])
                if all(f(record) for f in filters):
                    yield chosen[k], record
        return self._page(request, rows)

    def _persons(self, project: Project, request: Request) -> Response:
        filters: List[Callable[[Dict[str, Any]], bool]] = []
        for name in ("country", "device_type", "browser"):
            value = request.arg(name)
            if value is not None:
                filters.append(_equals(name, value))
        if request.arg("has_user_id") is not None:
            want = request.arg("has_user_id") == "true"
            filters.append(lambda p: (p["user_id"] is not None) == want)
        search = request.arg("search")
        if search:
            filters.append(lambda p: search in json.dumps(p))

        def rows(after: Optional[List[Any]]) -> Iterator[Tuple[Any, Dict[str, Any]]]:
            top = len(project.person_order) if after is None else after[0]
            for n in range(top - 1, -1, -1):
                person = project.persons[project.person_order[n]]
                if all(f(person) for f in filters):
                    yield (n, person["id"]), person
        return self._page(request, rows)

    def _page(self, request: Request, rows: Rows) -> Response:
        """One keyset page: `rows(after)` yields (key, record) in list order after a key."""
        limit = _parse_int(request.arg("limit") or "100", "limit")
        if not 1 <= limit <= 1000:
            raise _Invalid("limit must be between 1 and 1000")
        params = sorted((k, v) for k, v in request.query.items() if k not in ("cursor", "limit"))
        digest = hashlib.sha1(json.dumps(params).encode()).hexdigest()[:12]
        after: Optional[List[Any]] = None
        if request.arg("cursor"):
            try:
                raw = json.loads(base64.urlsafe_b64decode(request.arg("cursor") or ""))
                after, issued_for = list(raw["k"]), raw["f"]
            except (ValueError, KeyError, TypeError):
                raise _Invalid("cursor is not valid") from None
            if issued_for != digest:
                raise _Invalid("cursor was issued for different parameters")
        page: List[Tuple[Any, Dict[str, Any]]] = []
        more = False
        for key, record in rows(after):
            if len(page) == limit:
                more = True
                break
            page.append((list(key), record))
        cursor = None
        if more:
            token = json.dumps({"k": page[-1][0], "f": digest}).encode()
            cursor = base64.urlsafe_b64encode(token).decode()
        data = b",".join(r if isinstance(r, bytes) else orjson.dumps(r) for _, r in page)
        meta = orjson.dumps({"next_cursor": cursor, "has_more": more})
        return Response(200, b'{"data":[' + data + b'],"meta":' + meta + b"}",
                        {"Content-Type": "application/json"})


Rows = Callable[[Optional[List[Any]]], Iterator[Tuple[Any, Any]]]  # record: dict or its JSON


def _ascending(items: List[Tuple[List[Any], Dict[str, Any]]]) -> Rows:
    """Rows of a small list in ascending key order, after a key."""
    def rows(after: Optional[List[Any]]) -> Iterator[Tuple[Any, Dict[str, Any]]]:
        return ((k, r) for k, r in items if after is None or k > after)
    return rows


class _Invalid(ValueError):
    """A request parameter the API rejects with 400 INVALID_PARAMETER."""


def _cursor_key(cursor: str) -> Optional[List[Any]]:
    """The keyset position a cursor holds, or None for one that is not valid."""
    try:
        return list(json.loads(base64.urlsafe_b64decode(cursor))["k"])
    except (ValueError, KeyError, TypeError):
        return None


def _equals(name: str, value: Any) -> Callable[[Dict[str, Any]], bool]:
    return lambda record: bool(record[name] == value)


def _compare(name: str, op: Callable[[int, int], bool],
             bound: int) -> Callable[[Dict[str, Any]], bool]:
    return lambda record: op(record[name], bound)


def _parse_int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _Invalid(f"{name} must be an integer") from None


def _parse_time(value: str, name: str) -> int:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _Invalid(f"{name} must be an ISO 8601 date or date-time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)

"""What every simulated API shares: virtual clock, fault injection, request log, HTTP server.

The clock is virtual (milliseconds since the epoch) and moves only when a test or the control
endpoint advances it, so every run is deterministic. Faults are decided per request from a
seeded RNG. Control endpoints live under `/_sandbox/` and are not part of any API contract.
"""

from __future__ import annotations

import heapq
import math
import random
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

import orjson


def iso_ms(ms: int) -> str:
    """Format epoch milliseconds as UTC ISO 8601 with milliseconds and `Z`."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A record id in a path: a prefixed id with a digit (evt_01m4...), a UUID, or a number.
_ID = re.compile(r"(?=[a-z]*_[a-z]*\d)[a-z]+_[0-9a-z]{8,}"
                 r"|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}|\d+")


def parse_iso_ms(value: str) -> int:
    """Parse an RFC 3339 timestamp to epoch milliseconds (sub-millisecond digits truncated).

    Raises:
        ValueError: not an RFC 3339 timestamp with an offset.
    """
    dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError("timestamp without offset")
    return (dt - _EPOCH) // timedelta(milliseconds=1)


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]  # lower-cased names
    body: bytes = b""

    def arg(self, name: str) -> Optional[str]:
        values = self.query.get(name)
        return values[-1] if values else None

    @property
    def segments(self) -> List[str]:
        """The path's segments, each percent-decoded on its own (`path` stays as sent, so an
        encoded `/` inside an id never splits it)."""
        return [unquote(part) for part in self.path.strip("/").split("/")]


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, **headers: str) -> Response:
        return cls(status, orjson.dumps(payload), {"Content-Type": "application/json", **headers})


@dataclass
class Faults:
    """Switchable faults, each a probability per request (0 = off).

    `rate_repeat` answers a request for a next page (one with a cursor) with the previous
    page of the same path again (a cursor that repeats). `retry_after` is the `Retry-After`
    of injected 429s; `slow_seconds` the delay of a slow response; `latency_seconds` is added
    to every response; `fail_next` forces the next N requests to a 503 regardless of the
    rates. `rate_limit` is not random: a real limit of that many requests per second (a
    token bucket holding one second's worth), answered with 429 and `Retry-After`.
    """

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_slow: float = 0.0
    rate_malformed: float = 0.0
    rate_reset: float = 0.0
    rate_repeat: float = 0.0
    retry_after: int = 1
    slow_seconds: float = 0.0
    latency_seconds: float = 0.0
    fail_next: int = 0
    rate_limit: float = 0.0
    tick_seconds: float = 0.0

    def update(self, **changes: Any) -> None:
        update_switches(self, "fault", changes)


def update_switches(switches: Any, what: str, changes: Dict[str, Any]) -> None:
    """Set fields of a dataclass of switches by name, each cast to its field's type."""
    names = {f.name for f in fields(switches)}
    for key, value in changes.items():
        if key not in names:
            raise ValueError(f"unknown {what} {key!r}")
        setattr(switches, key, type(getattr(switches, key))(value))


class Api:
    """Base of a simulated API: subclasses implement `route` and `advance_to`."""

    name = "api"

    def __init__(self, start_ms: int, seed: int) -> None:
        self.now_ms = start_ms
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.faults = Faults()
        self.fault_rng = random.Random(seed + 1)
        self.requests: List[Tuple[str, str]] = []
        self.injected: Dict[str, int] = {}
        self.before_request: Optional[Callable[[Request], None]] = None
        self._last_ok: Dict[Any, Response] = {}
        self._tokens: Optional[float] = None  # rate limit bucket; None = full
        self._span: List[float] = []  # monotonic times of the first and latest API request
        self._refilled = 0.0

    # -- clock ----------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the clock forward, letting the API's world change over that span."""
        with self.lock:
            self.advance_to(self.now_ms + int(seconds * 1000))

    def advance_to(self, target_ms: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- serving --------------------------------------------------------------------------
    def route(self, request: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    def error(self, status: int, code: str, message: str) -> Response:
        """An error response in this API's format (overridden per API)."""
        return Response.json(status, {"error": {"code": code, "message": message}})

    def count(self, path: str) -> int:
        """How many API requests were made to `path` (prefix match) since the last reset."""
        return sum(1 for _, p in self.requests if p.startswith(path))

    def count_by_path(self) -> Dict[str, int]:
        """Requests since the last reset per path, with ids replaced by `{id}`."""
        counts: Dict[str, int] = {}
        for _, path in self.requests:
            shape = "/".join("{id}" if _ID.fullmatch(part) else part for part in path.split("/"))
            counts[shape] = counts.get(shape, 0) + 1
        return counts

    def reset_stats(self) -> None:
        self.requests.clear()
        self.injected.clear()
        self._span = []

    def serve(self, request: Request) -> Tuple[Response, Optional[str]]:
        """Handle one API request, maybe replacing it by a fault; returns (response, action)."""
        if self.before_request is not None:
            self.before_request(request)
        with self.lock:
            self.requests.append((request.method, request.path))
            self._span[1:] = [time.monotonic()]
            wait = self._over_limit()
            action = "429-limit" if wait else self._fault()
            if action is not None:
                self.injected[action] = self.injected.get(action, 0) + 1
            if action is not None and action.startswith("429"):
                response = self.error(429, "rate_limited", "Too many requests")
                response.headers["Retry-After"] = str(wait or self.faults.retry_after)
                return response, action
            if action is not None and action.startswith("5"):
                return self._server_error(int(action[:3]), action), action
            if self.faults.tick_seconds:
                self.advance(self.fault_rng.uniform(0, self.faults.tick_seconds))
            paging = any(k in request.query for k in ("before", "after", "cursor"))
            # a repeated page is a stale answer to the same list: same path, caller and
            # query but the cursor (lists of other queries or tenants are paged at once; one
            # of their pages would be another request's answer, which no contract allows)
            same = (request.path, request.headers.get("authorization"),
                    request.headers.get("x-tenant-id"),
                    tuple(sorted((k, tuple(v)) for k, v in request.query.items()
                                 if k not in ("before", "after", "cursor"))))
            if action == "repeat" and paging and same in self._last_ok:
                return self._last_ok[same], action
            response = self.route(request)
            if response.status == 200:
                self._last_ok[same] = response
            if action == "malformed" and response.status == 200:
                response = Response(200, response.body[: len(response.body) // 2],
                                    {"Content-Type": "application/json"})
            if response.status == 429:
                response.headers["Retry-After"] = str(self.faults.retry_after)
            return response, action

    def _over_limit(self) -> int:
        """0 when the request is within `faults.rate_limit`, else the whole seconds until it
        would be (for `Retry-After`)."""
        rate = self.faults.rate_limit
        if not rate:
            return 0
        now = time.monotonic()
        capacity = max(1.0, rate)
        tokens = capacity if self._tokens is None else min(
            capacity, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if tokens >= 1:
            self._tokens = tokens - 1
            return 0
        self._tokens = tokens
        return max(1, math.ceil((1 - tokens) / rate))

    def _fault(self) -> Optional[str]:
        f, r = self.faults, self.fault_rng
        if f.fail_next > 0:
            f.fail_next -= 1
            return "503-json"
        if f.rate_429 and r.random() < f.rate_429:
            return "429"
        if f.rate_5xx and r.random() < f.rate_5xx:
            return r.choice(["500-json", "502-empty", "503-html", "504-empty"])
        if f.rate_reset and r.random() < f.rate_reset:
            return "reset"
        if f.rate_slow and r.random() < f.rate_slow:
            return "slow"
        if f.rate_malformed and r.random() < f.rate_malformed:
            return "malformed"
        if f.rate_repeat and r.random() < f.rate_repeat:
            return "repeat"
        return None

    def _server_error(self, status: int, action: str) -> Response:
        if action.endswith("json"):
            return self.error(status, "internal", "Internal error")
        if action.endswith("html"):
            return Response(status, b"<html><body><h1>Service Unavailable</h1></body></html>",
                            {"Content-Type": "text/html"})
        return Response(status, b"")

    # -- control --------------------------------------------------------------------------
    def control(self, request: Request) -> Response:
        """`/_sandbox/...`: advance the clock, set faults, read stats. Not part of the API."""
        verb = request.path.rsplit("/", 1)[-1]
        if verb == "advance":
            self.advance(float(request.arg("seconds") or 0))
        elif verb == "faults":
            self.faults, self._tokens = Faults(), None
            self.faults.update(**(orjson.loads(request.body) if request.body else {}))
        elif verb == "reset":
            self.reset_stats()
        elif verb != "stats":
            return Response.json(404, {"error": "unknown control"})
        return Response.json(200, {"now": iso_ms(self.now_ms), "requests": len(self.requests),
                                   "cpu_seconds": time.process_time(),
                                   "span_seconds": self._span[-1] - self._span[0]
                                   if self._span else 0.0,
                                   "injected": self.injected})



class EventWorld(Api):
    """An API whose world moves by scheduled events on the virtual clock.

    `_at(when, kind, *args)` queues a call of `self._on_<kind>(*args)` at `when` (epoch ms);
    `advance_to` runs every queued call up to the target in time order (ties in the order
    they were queued), then `after_advance()`.
    """

    def __init__(self, start_ms: int, seed: int) -> None:
        super().__init__(start_ms, seed)
        self._queue: List[Tuple[int, int, str, Tuple[Any, ...]]] = []
        self._seq = 0

    def _at(self, when: int, kind: str, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, kind, args))

    def advance_to(self, target_ms: int) -> None:
        while self._queue and self._queue[0][0] <= target_ms:
            when, _, kind, args = heapq.heappop(self._queue)
            self.now_ms = max(self.now_ms, when)
            getattr(self, f"_on_{kind}")(*args)
        self.now_ms = max(self.now_ms, target_ms)
        self.after_advance()

    def after_advance(self) -> None:
        """Runs after every advance; nothing by default."""

class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write: separate small writes meet Nagle's algorithm and
    # the client's delayed ACK, which stalls every keep-alive response by ~40 ms.
    wbufsize = 1 << 16

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def date_time_string(self, timestamp: Optional[float] = None) -> str:
        """The `Date` header tells the virtual clock, the server's clock that counts."""
        return formatdate(self.server.api.now_ms / 1000, usegmt=True)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        api = self.server.api
        action = None
        if request.path.startswith("/_sandbox/"):
            response = api.control(request)
        else:
            response, action = api.serve(request)
        if action == "reset":
            self.close_connection = True
            self.connection.shutdown(2)  # the client sees its connection reset
            return
        delay = api.faults.latency_seconds + (api.faults.slow_seconds if action == "slow" else 0)
        if delay:
            time.sleep(delay)
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, api: Api, port: int) -> None:
        self.api = api
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (killed, timed out) is normal here; report anything else."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class Served:
    """A running server for one API; `url` is its base URL. Use as a context manager."""

    def __init__(self, api: Api, port: int = 0) -> None:
        self.api = api
        self._server = _Server(api, port)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"sandbox-{api.name}")

    def start(self) -> Served:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

"""The one HTTP layer every source uses.

It owns what every API call needs and nothing API-specific: timeouts, bounded retries with
exponential backoff and jitter, `Retry-After` on 429, one clear error for a request that must
not be retried, credentials kept in an auth object and redacted from every message, pacing
shared by all threads of a client (`Pace`), and counts of requests, retries and rate-limit
waits for the run log (`sources.runstats`).
"""

from __future__ import annotations

import email.utils
import functools
import logging
import random
import ssl
import threading
import time
from datetime import datetime
from typing import Any, Callable, Generator, Mapping, Optional
from urllib.parse import quote

import httpx
import msgspec
import orjson
from dlt.common.configuration import configspec
from dlt.common.configuration.specs import BaseConfiguration

from sources import runstats
from sources.errors import ApiError, SyncError
from sources.timeutil import parse_ts

log = logging.getLogger("sessionsync.http")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Statuses that condemn one partition (its credentials or its id), not the whole run.
PARTITION_STATUSES = frozenset({401, 403, 404})


@configspec
class HttpConfig(BaseConfiguration):
    """Transport settings shared by all sources, with their defaults; set in `[sources.http]`
    (`SOURCES__HTTP__<NAME>`), and a source may override any of them in its own
    `[sources.<name>.http]` section.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    # Tries per request after the first. A run makes thousands of requests, several at once;
    # at a 26% transient-fault rate one request exhausts 7 tries with p = 7.6e-5 (a run of
    # 10k requests fails half the time), 11 tries with p = 3.4e-7. Backoff is capped at
    # `backoff_max`, so a dead API is given up on after ~75 s on average.
    max_retries: int = 10
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_pages: int = 100000
    # At most this many requests start per second across a source's threads; 0 = no limit.
    requests_per_second: float = 0.0


def segment(value: Any) -> str:
    """`value` as one URL path segment, percent-encoded whole.

    Every value a source puts in a path (an id, a distinct id) goes through this: ids are
    free-form strings, and a raw `/`, `?`, `#`, `%` or space would change the path, start a
    query or be dropped as a fragment. Example: `f"/persons/{segment('a/b?c')}"` ->
    `/persons/a%2Fb%3Fc`.
    """
    return quote(str(value), safe="")


class BearerAuth(httpx.Auth):
    """Sends `Authorization: Bearer <token>`; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def redact(self, text: str) -> str:
        """Remove the token from a text that could have echoed it (server messages, bodies)."""
        return text.replace(self._token, "***") if self._token else text

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def check_base_url(source: str, base_url: str) -> None:
    """Refuse a base URL that is not http(s)://host at once, naming its setting."""
    url = httpx.URL(str(base_url)) if base_url else None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise SyncError(f"{source}: setting base_url = {str(base_url)!r} is not an http(s) URL; "
                        f"set SOURCES__{source.upper()}__BASE_URL (or base_url under "
                        f"[sources.{source}] in .dlt/config.toml)")


ErrorMessage = Callable[[Any], Optional[str]]
"""Extracts the server's message from a parsed error body, per API error format."""


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context every client verifies servers with: httpx's default (its CA bundle,
    `SSL_CERT_FILE` / `SSL_CERT_DIR` honoured), built once per process. Building one loads the
    CA bundle, ~20 ms; a backfill makes a client per load."""
    return httpx.create_ssl_context()


class ApiClient:
    """An httpx client with the retry policy and error handling every source shares.

    Args:
        source: source name, used in error messages.
        base_url: scheme, host and port of the API.
        auth: an auth object that carries the credentials (and can redact them).
        config: timeouts and retry policy.
        headers: extra non-secret headers sent on every request.
        error_message: reads the server's message out of a parsed error body.
    """

    def __init__(
        self,
        source: str,
        base_url: str,
        auth: BearerAuth,
        config: HttpConfig,
        headers: Optional[Mapping[str, str]] = None,
        error_message: Optional[ErrorMessage] = None,
    ) -> None:
        check_base_url(source, base_url)
        self.source = source
        self.config = config
        self.auth = auth
        self.last_date: Optional[str] = None  # of the latest response on any thread
        self._thread_date = threading.local()  # of the latest response on each thread
        self.pace = Pace(config.requests_per_second or 0.0)
        self._error_message = error_message or (lambda body: None)
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=auth,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
            verify=tls_context(),
        )

    def close(self) -> None:
        self._client.close()

    def server_time(self) -> datetime:
        """The API server's clock: the `Date` header of the latest response this thread
        received (of any thread's, before this one made a request); whole seconds.

        Sources measure their windows on it, never on this machine's clock. Per thread, so
        a partition paged on its own thread reads the time of its own requests.
        """
        date = getattr(self._thread_date, "value", None) or self.last_date
        if date is None:
            raise SyncError(f"{self.source}: the API sent no Date header")
        return parse_ts(email.utils.parsedate_to_datetime(date))

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def get_json(
        self,
        path: str,
        params: Optional[Mapping[str, Any]] = None,
        headers: Optional[Mapping[str, str]] = None,
        decode: Callable[[bytes], Any] = orjson.loads,
    ) -> Any:
        """GET `path` and return its parsed JSON body, retrying what is transient.

        `decode` parses the body: orjson by default, or a typed page decoder
        (`sources.structs.page_decoder`).

        Raises:
            ApiError: on 4xx other than 429, on a body that is not JSON after retries, when
                the retries are used up, or on a body not of the shape `decode` expects.
        """
        endpoint = f"GET {path}"
        attempt = 0
        while True:
            runstats.count("requests")
            wait: Optional[float] = None
            self.pace.wait()
            try:
                response = self._client.get(path, params=params, headers=headers)
            except httpx.TransportError as exc:  # connect errors, timeouts, resets
                problem = f"{type(exc).__name__}"
                status: Optional[int] = None
            else:
                date = response.headers.get("date")
                if date:
                    self.last_date = self._thread_date.value = date
                status = response.status_code
                if status < 300:
                    try:
                        body = decode(response.content)
                        runstats.count("pages")
                        return body
                    except msgspec.ValidationError as exc:  # JSON, records of another shape
                        raise ApiError(self.source, endpoint, status,
                                       f"response does not match the API's contract: {exc}"
                                       ) from None
                    except (orjson.JSONDecodeError, msgspec.DecodeError):
                        problem = "response body is not valid JSON"
                elif status in RETRY_STATUSES:
                    problem = self._message(response)
                    if status == 429:
                        runstats.count("rate_limit_waits")
                        wait = _retry_after(response.headers.get("retry-after"))
                else:
                    raise ApiError(self.source, endpoint, status, self._message(response))
            if attempt >= self.config.max_retries:
                raise ApiError(
                    self.source, endpoint, status, f"{problem} (gave up after {attempt} retries)"
                )
            attempt += 1
            runstats.count("retries")
            if wait is None:
                wait = backoff_delay(attempt, self.config.backoff_base, self.config.backoff_max)
                log.info("%s: %s -> %s, retry %d in %.2fs",
                         self.source, endpoint, problem, attempt, wait)
                time.sleep(wait)
            else:  # the API asked everyone to wait: every thread of this client holds back
                log.info("%s: %s -> %s, retry %d after the API's %.2fs",
                         self.source, endpoint, problem, attempt, wait)
                self.pace.hold(wait)

    def _message(self, response: httpx.Response) -> str:
        """The server's message for an error response, in one line and without secrets."""
        message: Optional[str] = None
        try:
            message = self._error_message(orjson.loads(response.content))
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError):
            message = None
        if not message:
            kind = response.headers.get("content-type", "").split(";")[0] or "empty"
            message = f"{response.reason_phrase or 'error'} ({kind} body)"
        return self.auth.redact(" ".join(str(message).split()))[:300]


class Pace:
    """Paces one client's requests across all its threads.

    At most `rate` requests start per second (evenly spaced, no bursts; 0 means no limit),
    and after a 429 no request starts until its `Retry-After` has passed, on any thread:
    partitions paged at once share the API's limit instead of each hitting it.
    """

    def __init__(self, rate: float) -> None:
        if rate < 0:
            raise SyncError(f"requests_per_second must be 0 (no limit) or more, got {rate}")
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0  # monotonic time the next request may start
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until this thread's request may start, and book its slot."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)

    def hold(self, seconds: float) -> None:
        """No request starts for `seconds` from now."""
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a `Retry-After` header (delta seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None

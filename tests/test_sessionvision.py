"""sessionvision end to end: two projects, late events, sessions and persons kept current."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import orjson
import pytest

import pipelines.backfill as backfill_module
from pipelines.backfill import backfill
from pipelines.run import sync_source
from pipelines.warehouse import connect, resolve_location
from sandbox.core import iso_ms, parse_iso_ms
from sandbox.serve import START
from sandbox.sessionvision import (
    DEMO_TOKEN,
    MAX_DELAY_MS,
    OTHER_PROJECT,
    PROJECTS,
    Behaviour,
    SessionVisionApi,
)
from sources.errors import ApiError
from sources.http import ApiClient, BearerAuth, HttpConfig
from tests.conftest import CLI, ROOT, assert_quiet_run, run_cli
from tests.conftest import serve_sessionvision as serving
from tests.conftest import sessionvision_rows as loaded
from tests.conftest import sessionvision_truth as assert_equals_truth
from tests.conftest import sessionvision_value as _api_value

DAY_S = 86_400


def test_initial_sync_with_old_start_date_equals_truth(sessionvision: SessionVisionApi) -> None:
    result = sync_source("sessionvision")
    assert result.ok, result.error
    data = assert_equals_truth(sessionvision)
    oldest = min(r["timestamp"] for r in data["events"].values())
    assert (parse_iso_ms(START) - oldest.timestamp() * 1000) > 8 * DAY_S * 1000, \
        "events older than 7 days must load (date_from sent)"
    with connect("duckdb", resolve_location("duckdb", None)) as con:
        columns = con.execute("SELECT count(*) FROM information_schema.columns "
                              "WHERE table_schema = 'sessionvision' AND table_name = 'events'"
                              ).fetchall()[0][0]
        plans = con.execute("SELECT count(*) FROM sessionvision.events "
                            "WHERE properties->>'plan' = 'plan-3'").fetchall()[0][0]
    assert columns < 20, "open-ended properties must not become columns"
    assert plans == sum(1 for p in PROJECTS for e in sessionvision.truth(p, "events")
                        if e["properties"].get("plan") == "plan-3") > 0


def test_late_events_sessions_persons_and_definitions_stay_current(
        sessionvision: SessionVisionApi) -> None:
    assert sync_source("sessionvision").ok
    first_run_ms = sessionvision.now_ms
    before = {t: loaded(t) for t in ("events", "sessions", "persons", "action_definitions")}
    sessionvision.advance(2 * DAY_S)
    assert sync_source("sessionvision").ok
    sessionvision.advance(DAY_S / 2)
    result = sync_source("sessionvision")
    assert result.ok, result.error
    after = assert_equals_truth(sessionvision)

    late = [k for k, r in after["events"].items() if k not in before["events"]
            and r["timestamp"].timestamp() * 1000 < first_run_ms]
    assert late, "no late event arrived for a time the first run had already covered"
    grown = [k for k, r in before["sessions"].items()
             if after["sessions"][k]["end_time"] != r["end_time"]]
    assert grown, "no already-loaded session was extended"
    seen = [k for k, r in before["persons"].items()
            if after["persons"][k]["last_seen"] != r["last_seen"]]
    assert seen, "no already-loaded person was seen again"
    actions = after["action_definitions"]
    assert any(r["archived"] for r in actions.values()), "no archived action definition"
    assert any(r["deleted_at"] is not None for r in actions.values()), "none deleted"


def test_noop_sync_is_bounded_and_loads_no_duplicates(sessionvision: SessionVisionApi) -> None:
    assert sync_source("sessionvision").ok
    assert_quiet_run(sessionvision, "sessionvision")
    now = sessionvision.now_ms
    bound = 0
    for p in PROJECTS:
        recent = [e for e in sessionvision.truth(p, "events")
                  if parse_iso_ms(e["timestamp"]) >= now - MAX_DELAY_MS - 120_000]
        bound += math.ceil((len(recent) + 1) / 1000)  # the 48-hour event window
        bound += 3  # the three definition lists (each under 1,000 rows)
        persons = len(sessionvision.truth(p, "persons"))
        assert sessionvision.count(f"/api/v1/projects/{p}/persons") == math.ceil(
            min(persons, 5000) / 1000)  # the rolling slice (default recheck_rows)
        maybe_open = [s for s in sessionvision.truth(p, "sessions")  # within their timeout
                      if parse_iso_ms(s["end_time"]) >= now - 31 * 60_000]
        assert sessionvision.count(f"/api/v1/projects/{p}/sessions") == len(maybe_open)
        bound += math.ceil(min(persons, 5000) / 1000) + len(maybe_open)
    assert 0 < len(sessionvision.requests) <= bound
    assert_equals_truth(sessionvision)  # also asserts no duplicate keys


def test_daily_active_users_match_the_api(sessionvision: SessionVisionApi) -> None:
    assert sync_source("sessionvision").ok
    sessionvision.advance(DAY_S)
    assert sync_source("sessionvision").ok
    truth: Dict[Tuple[str, str], set] = defaultdict(set)
    for p in PROJECTS:
        for e in sessionvision.truth(p, "events"):
            truth[(p, e["timestamp"][:10])].add(e["distinct_id"])
    with connect("duckdb", resolve_location("duckdb", None)) as con:
        rows = con.execute("""
            SELECT project_id, strftime(timestamp AT TIME ZONE 'UTC', '%Y-%m-%d') AS day,
                   count(DISTINCT distinct_id) AS dau
            FROM sessionvision.events GROUP BY ALL""").fetchall()
    assert {(p, d): n for p, d, n in rows} == {k: len(v) for k, v in truth.items()}


def test_project_the_token_cannot_read_fails_alone(sessionvision: SessionVisionApi) -> None:
    proc = run_cli("sync", "sessionvision", SOURCES__SESSIONVISION__PROJECT_IDS=json.dumps(
        [PROJECTS[0], OTHER_PROJECT]))
    assert proc.returncode == 1
    assert OTHER_PROJECT in proc.stderr and "403" in proc.stderr, proc.stderr
    assert DEMO_TOKEN not in proc.stdout + proc.stderr
    projects = {r["project_id"] for r in loaded("events").values()}
    assert projects == {PROJECTS[0]}


def test_parquet_warehouse_equals_truth_under_faults(sessionvision: SessionVisionApi) -> None:
    sessionvision.faults.update(rate_429=0.1, rate_5xx=0.05, retry_after=0)
    assert sync_source("sessionvision", "parquet").ok
    sessionvision.advance(DAY_S)
    assert sync_source("sessionvision", "parquet").ok
    assert sessionvision.injected.get("429", 0) > 0
    assert_equals_truth(sessionvision, "parquet")


def test_bad_limit_and_cursor_are_clear_errors(sessionvision: SessionVisionApi) -> None:
    http = HttpConfig(connect_timeout=2, read_timeout=2, max_retries=2, backoff_base=0.01,
                      backoff_max=0.01, max_pages=10)
    path = f"/api/v1/projects/{PROJECTS[0]}/events"
    with ApiClient("sessionvision", sessionvision.url,  # type: ignore[attr-defined]
                   BearerAuth(DEMO_TOKEN), http,
                   error_message=lambda b: f"{b['error']} ({b['code']})") as client:
        with pytest.raises(ApiError) as err:
            client.get_json(path, params={"limit": 5000})
        assert err.value.status == 400 and "INVALID_PARAMETER" in str(err.value)
        page = client.get_json(path, params={"limit": 10})
        with pytest.raises(ApiError) as err:
            client.get_json(path, params={"limit": 10, "event": "$pageview",
                                          "cursor": page["meta"]["next_cursor"]})
        assert "different parameters" in str(err.value)
    assert len(sessionvision.requests) == 3, "a 400 must not be retried"


def test_backfill_of_an_older_window_completes_the_history(
        sessionvision: SessionVisionApi, monkeypatch: pytest.MonkeyPatch) -> None:
    start = parse_iso_ms(START)
    monkeypatch.setenv("SOURCES__SESSIONVISION__START_DATE", iso_ms(start - 3 * DAY_S * 1000))
    assert sync_source("sessionvision").ok
    older = [e for p in PROJECTS for e in sessionvision.truth(p, "events")
             if parse_iso_ms(e["timestamp"]) < start - 3 * DAY_S * 1000]
    assert older and not any(k[1] == older[0]["id"] for k in loaded("events"))
    result = backfill("sessionvision", iso_ms(start - 12 * DAY_S * 1000),
                      iso_ms(start - 3 * DAY_S * 1000), "3d", None)
    assert result.ok, result.error
    assert result.chunks == 3 and result.rows["events"] == len(older)
    assert_equals_truth(sessionvision)


def _sync_ok(destination: str = "duckdb") -> None:
    result = sync_source("sessionvision", destination)
    assert result.ok, result.error


def test_awkward_distinct_ids_are_read_by_id_once_and_current(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Distinct ids are free-form: `/ ? # %` and spaces must reach the API as one segment."""
    api = SessionVisionApi(parse_iso_ms(START), seed=5, visits_per_day=120, history_days=4,
                           behaviour=Behaviour(awkward_ids=0.4))
    with serving(api, monkeypatch, tmp_path):
        _sync_ok()
        api.reset_stats()
        api.advance(DAY_S / 2)
        _sync_ok()
        data = assert_equals_truth(api)  # every person loaded, once, in its latest state
    awkward = [r["distinct_id"] for r in data["persons"].values()
               if any(c in r["distinct_id"] for c in "/?#% ")]
    assert len(awkward) > 10, "the sandbox made too few awkward ids to prove anything"
    by_id = [p for _, p in api.requests if "/persons/" in p]
    assert any("%2F" in p for p in by_id) and any("%25" in p for p in by_id), by_id[:5]


def test_persons_changed_without_an_event_are_current_within_the_bound(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Persons identified or given properties with no event are re-read by the rolling
    slice: within ceil(persons / recheck_rows) + 1 slice advances, all are current."""
    api = SessionVisionApi(parse_iso_ms(START), seed=7, visits_per_day=120, history_days=10)
    with serving(api, monkeypatch, tmp_path):
        monkeypatch.setenv("SOURCES__SESSIONVISION__RECHECK_ROWS", "100")
        _sync_ok()
        api.behaviour.update(silent_changes=40)
        api.advance(2 * 3600)
        api.behaviour.update(silent_changes=0)
        before = loaded("persons")
        stale = [(p, r["id"]) for p in PROJECTS for r in api.truth(p, "persons")
                 if (p, r["id"]) in before and r["properties"] != _api_value(
                     "properties", before[(p, r["id"])]["properties"])]
        assert len(stale) > 20, "too few silent changes to prove anything"
        persons = max(len(api.truth(p, "persons")) for p in PROJECTS)
        for _ in range(math.ceil(persons / 100) + 2):  # the bound, plus new persons' pages
            api.advance(3601)  # an hour: the slice moves on even in a quiet run
            _sync_ok()
        assert_equals_truth(api)


def test_sessions_finalised_by_their_timeout_are_current_after_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A session read while open is read again once its inactivity timeout has passed, even
    when no event of it arrives."""
    api = SessionVisionApi(parse_iso_ms(START), seed=9, visits_per_day=600, history_days=2,
                           behaviour=Behaviour(finalise_sessions=True))
    with serving(api, monkeypatch, tmp_path):
        _sync_ok()
        opened = {k for k, r in loaded("sessions").items() if r["is_bounce"] is None}
        events = {k[1] for k in loaded("events")}
        api.advance(40 * 60)
        quiet = {k for k in opened if not any(
            e["session_id"] == k[1] and e["id"] not in events for e in api.truth(k[0], "events"))}
        assert quiet, "no open session went quiet: this test would prove nothing"
        _sync_ok()
        rows = assert_equals_truth(api)
    assert all(rows["sessions"][k]["is_bounce"] is not None for k in quiet)


@pytest.mark.parametrize("destination", ["parquet", "duckdb"])
def test_a_session_listed_twice_in_one_load_ends_as_one_latest_row(
        destination: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A late event moves a session's `start_time` while its list is paged: it is listed
    twice. The load keeps one row, the later read, and succeeds on Delta too."""
    api = SessionVisionApi(parse_iso_ms(START), seed=13, visits_per_day=1500, history_days=3,
                           behaviour=Behaviour(shift_sessions=1.0))
    with serving(api, monkeypatch, tmp_path):
        _sync_ok(destination)  # the first run lists every session
        first = set(api.shifted)
        assert first, "no session was listed twice in the first run"
        events = {k[1] for k in loaded("events", destination)}
        api.advance(DAY_S)
        _sync_ok(destination)  # over 500 due sessions: the list again, merged into rows
        rows = loaded("sessions", destination)  # asserts one row per key
        new = {r["session_id"] for k, r in loaded("events", destination).items()
               if k[1] not in events}
    truth = {(p, s["id"]): s for p in PROJECTS for s in api.truth(p, "sessions")}
    # sessions moved while the second run paged them, and due in it (they had new events;
    # the others are refreshed by the next run, when it loads the moving event)
    twice = {k for k in truth if k[1] in set(api.shifted) - first and k[1] in new}
    assert twice, "no due session was listed twice in the second run"
    for k in twice | {k for k in truth if k[1] in first}:
        assert {f: _api_value(f, rows[k][f]) for f in truth[k]} == truth[k]


def test_time_passing_and_every_behaviour_at_once_converge_to_the_truth(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The clock moves with every request and the world changes in every way the contract
    allows while runs read it; once it stops, the stated bound's runs make the warehouse
    equal the API (every watermark came from a response before the reads it covers)."""
    api = SessionVisionApi(parse_iso_ms(START), seed=17, visits_per_day=600, history_days=4,
                           behaviour=Behaviour(awkward_ids=0.2, finalise_sessions=True,
                                               shift_sessions=1.0, silent_changes=10))
    api.faults.update(tick_seconds=10)
    with serving(api, monkeypatch, tmp_path):
        for _ in range(3):
            _sync_ok()
            api.advance(1800)
        assert api.shifted, "no session moved during paging"
        api.faults.update(tick_seconds=0)
        api.behaviour.update(silent_changes=0, shift_sessions=0)
        for _ in range(2):  # persons fit in one slice: the bound is 2 slice advances
            api.advance(3601)
            _sync_ok()
        assert_equals_truth(api)


def test_backfill_killed_mid_window_rereads_only_the_unfinished_chunk(
        sessionvision: SessionVisionApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """Events are appended, not merged, by a backfill (`pipelines.backfill.NEW_ONLY`): a run
    killed during its third chunk, then run again, reads that chunk again and no other,
    and every event is loaded once."""
    start = parse_iso_ms(START)
    monkeypatch.setenv("SOURCES__SESSIONVISION__START_DATE", iso_ms(start - DAY_S * 1000))
    _sync_ok()  # the last day, and the definitions
    days = [iso_ms(start - d * DAY_S * 1000)[:10] for d in (12, 8, 4, 0)]
    window = ["--start", days[0], "--end", days[-1], "--chunk", "4d"]
    windows: List[str] = []  # the day of `date_from` of every events request, in order
    proc: List[subprocess.Popen] = []

    def note_and_kill(request: Any) -> None:
        if request.path.endswith("/events"):
            windows.append((request.arg("date_from") or "")[:10])
            if proc and days[0] in windows:  # the oldest chunk begins (projects at once)
                os.kill(proc.pop().pid, signal.SIGKILL)
    sessionvision.before_request = note_and_kill
    try:
        killed = subprocess.Popen([CLI, "backfill", "sessionvision", *window], cwd=ROOT,
                                  env=dict(os.environ), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        proc.append(killed)
        assert killed.wait(timeout=120) == -signal.SIGKILL
        assert set(windows) == set(days[:3]), windows
        windows.clear()
        rerun = run_cli("backfill", "sessionvision", *window)
    finally:
        sessionvision.before_request = None
    assert rerun.returncode == 0, rerun.stderr
    assert "2 already done" in rerun.stdout, rerun.stdout
    assert set(windows) == {days[0]}, f"a finished chunk was read again: {windows}"
    assert_equals_truth(sessionvision)  # every record, once (`loaded` asserts one row per key)


def test_backfill_over_events_a_sync_loaded_appends_none_twice(
        sessionvision: SessionVisionApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backfill window that overlaps what the scheduled sync (or an earlier load that was
    killed before its chunk was marked done) loaded: those events are not appended again."""
    start = parse_iso_ms(START)
    monkeypatch.setenv("SOURCES__SESSIONVISION__START_DATE", iso_ms(start - 4 * DAY_S * 1000))
    _sync_ok()
    before = loaded("events")
    result = backfill("sessionvision", iso_ms(start - 12 * DAY_S * 1000), iso_ms(start), "5d",
                      None)
    assert result.ok, result.error
    after = assert_equals_truth(sessionvision)["events"]  # asserts one row per event
    # the first chunk merges (its pipeline reads nothing back yet); the next ones append
    assert len(after) > len(before) and result.chunks == 3


def _noting_windows(runs: List[Tuple[str, str]], failing: List[bool]) -> Callable[[Any], None]:
    """A sandbox hook noting each run's events window (`date_from`, `date_to`) in `runs`;
    while `failing` holds anything, the API goes away during the third run."""
    def note(request: Any) -> None:
        if request.path.endswith("/events"):
            window = (request.arg("date_from") or "", request.arg("date_to") or "")
            if window not in runs:
                runs.append(window)
            if failing and len(runs) == 3:
                raise ConnectionAbortedError("the sandbox drops the connection")
    return note


def test_default_backfill_runs_days_sized_by_rows_and_resumes_by_the_day(
        sessionvision: SessionVisionApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """With `--chunk` omitted, a run takes as many days as make `LOAD_ROWS` rows (judged by
    the run before), each day marked done with its run; a run that fails is read again on the
    rerun, and the days of runs that finished are not."""
    monkeypatch.setattr(backfill_module, "LOAD_ROWS", 3000)
    start = parse_iso_ms(START)
    monkeypatch.setenv("SOURCES__SESSIONVISION__START_DATE", iso_ms(start - DAY_S * 1000))
    _sync_ok()  # the last day, and the definitions
    runs: List[Tuple[str, str]] = []  # (date_from, date_to) of each run's events reads
    failing = [True]
    sessionvision.before_request = _noting_windows(runs, failing)
    begin, end = iso_ms(start - 12 * DAY_S * 1000), iso_ms(start)
    try:
        failed = backfill("sessionvision", begin, end, None, None)
        assert not failed.ok and len(runs) == 3, (failed, runs)
        first, second, third = ((parse_iso_ms(a), parse_iso_ms(b)) for a, b in runs)
        assert first[1] - first[0] == backfill_module.FIRST_DAYS * DAY_S * 1000
        assert second[1] == first[0] and third[1] == second[0]
        assert 1 < (second[1] - second[0]) / (DAY_S * 1000) < 7  # ~3,000 rows: sized by rows
        failing.clear()
        runs.clear()
        rerun = backfill("sessionvision", begin, end, None, None)
    finally:
        sessionvision.before_request = None
    assert rerun.ok, rerun.error
    days_done = (first[1] - second[0]) // (DAY_S * 1000)
    assert rerun.skipped == days_done, rerun
    assert parse_iso_ms(runs[0][1]) == third[1], "the failed run is read again, first"
    assert all(parse_iso_ms(b) <= second[0] for _, b in runs), "a finished day read again"
    assert_equals_truth(sessionvision)


def test_a_backfill_of_many_loads_reads_persons_in_its_last_load_and_loses_none(
        sessionvision: SessionVisionApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backfill of several loads keeps the persons each load's events name due in state and
    reads them in its last load, so the persons list is paged once, not once per load; one
    that fails midway loses none of them: its rerun's last load reads them all."""
    monkeypatch.setattr(backfill_module, "LOAD_ROWS", 3000)
    start = parse_iso_ms(START)
    begin, end = iso_ms(start - 10 * DAY_S * 1000), iso_ms(start)
    runs: List[Tuple[str, str]] = []  # (date_from, date_to) of each load's events reads
    person_reads: List[int] = []  # for each persons request, the load it came in
    failing = [True]
    windows = _noting_windows(runs, failing)

    def note(request: Any) -> None:
        windows(request)
        if "/persons" in request.path:
            person_reads.append(len(runs))
    sessionvision.before_request = note
    try:
        failed = backfill("sessionvision", begin, end, None, None)
        assert not failed.ok and len(runs) == 3, (failed, runs)
        assert not person_reads, "a load that was not the backfill's last read persons"
        failing.clear()
        runs.clear()
        rerun = backfill("sessionvision", begin, end, None, None)
    finally:
        sessionvision.before_request = None
    assert rerun.ok, rerun.error
    assert len(runs) > 1 and set(person_reads) == {len(runs)}, (runs, set(person_reads))
    named = {(k[0], r["distinct_id"]) for k, r in loaded("events").items()}
    persons = {(k[0], r["distinct_id"]) for k, r in loaded("persons").items()}
    assert named and not named - persons, f"{len(named - persons)} persons missing"


def test_a_project_refused_while_its_sessions_are_read_loses_none_of_them(
        sessionvision: SessionVisionApi) -> None:
    """Events load and their checkpoint moves; the project's sessions are then refused (403).
    The next runs find those events already loaded, so only what the failed run kept due
    can bring their sessions in."""
    assert sync_source("sessionvision").ok
    sessionvision.advance(DAY_S / 2)
    project, route = PROJECTS[0], sessionvision.route

    def refuse_sessions(request: Any) -> Any:
        if request.path.startswith(f"/api/v1/projects/{project}/sessions"):
            return sessionvision.error(403, "", f"Insufficient permissions for project {project}")
        return route(request)

    sessionvision.route = refuse_sessions  # type: ignore[method-assign]
    partial = sync_source("sessionvision")
    assert not partial.ok and f"project {project}" in (partial.error or "")
    sessionvision.route = route  # type: ignore[method-assign]
    assert sync_source("sessionvision").ok
    sessionvision.advance(2 * 3600)
    assert sync_source("sessionvision").ok
    assert_equals_truth(sessionvision)


def test_a_backfill_of_sessions_without_events_is_refused(sessionvision: SessionVisionApi) -> None:
    """Sessions and persons are read for the events a window loads: alone they would load
    nothing and mark the window done."""
    end = sessionvision.now_ms
    done = run_cli("backfill", "sessionvision", "--start", iso_ms(end - 3 * DAY_S * 1000),
                   "--end", iso_ms(end), "--chunk", "1d", "--resource", "sessions")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--resource events" in lines[0], done.stderr


# Every column of `events` and its type, as every version so far has loaded it.
EVENT_COLUMNS = {"id": "VARCHAR", "project_id": "VARCHAR", "event": "VARCHAR",
                 "distinct_id": "VARCHAR", "session_id": "VARCHAR",
                 "timestamp": "TIMESTAMP WITH TIME ZONE", "current_url": "VARCHAR",
                 "browser": "VARCHAR", "device_type": "VARCHAR", "country": "VARCHAR",
                 "referrer": "VARCHAR", "properties": "VARCHAR"}


@pytest.mark.parametrize("destination", ["duckdb", "parquet"])
def test_events_keep_their_columns_types_and_properties_text(
        sessionvision: SessionVisionApi, destination: str) -> None:
    """The events table is what earlier versions wrote: the same columns of the same types,
    and `properties` as the compact JSON text of the API's object, byte for byte (escapes,
    non-ASCII text, nested objects, numbers and booleans included)."""
    project = sessionvision.projects[PROJECTS[0]]
    odd = {"note": 'café "quoted" \\ back/slash \u2028 😀 <tag> ñ', "nested": {"a": [1, 2.5, None]},
           "flag": False, "$browser": "Firefox ✓"}
    for event in list(project.events.values())[:25]:  # before any is rendered
        event["properties"] = {**event["properties"], **odd}
    assert sync_source("sessionvision", destination).ok
    assert_equals_truth(sessionvision, destination)
    with connect(destination, resolve_location(destination, None)) as con:
        types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE "
                                 "sessionvision.events)").fetchall())
        texts = dict(con.execute("SELECT id, properties FROM sessionvision.events").fetchall())
    assert types == EVENT_COLUMNS
    truth = {e["id"]: e for p in PROJECTS for e in sessionvision.truth(p, "events")}
    assert texts.keys() == truth.keys()
    for event_id, text in texts.items():
        assert text == orjson.dumps(truth[event_id]["properties"]).decode(), event_id
    assert sum('"Firefox ✓"' in text and "😀" in text for text in texts.values()) == 25


def test_an_event_not_of_the_contracts_shape_fails_the_run_naming_it(
        sessionvision: SessionVisionApi) -> None:
    """An event whose field has another type than the contract's stops the run with one line
    naming the field, at once (not retried), and nothing of the project is loaded."""
    project = sessionvision.projects[PROJECTS[0]]
    next(iter(project.events.values()))["distinct_id"] = 12345
    reads: List[str] = []  # each events request, with its query: a retry repeats one
    sessionvision.before_request = lambda request: reads.append(
        f"{request.path}?{sorted(request.query.items())}") if request.path.endswith(
        "/events") else None
    try:
        result = sync_source("sessionvision")
    finally:
        sessionvision.before_request = None
    assert not result.ok
    assert "does not match the API's contract" in str(result.error), result.error
    assert "distinct_id" in str(result.error) and "\n" not in str(result.error)
    assert reads and len(set(reads)) == len(reads), "an events page was read again"

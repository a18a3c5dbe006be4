"""sessionvision end to end: two projects, late events, sessions and persons kept current."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest

from pipelines.backfill import backfill
from pipelines.run import sync_source
from pipelines.warehouse import connect, resolve_location
from sandbox.core import Served, iso_ms, parse_iso_ms
from sandbox.serve import START
from sandbox.sessionvision import (
    DEMO_TOKEN,
    MAX_DELAY_MS,
    OTHER_PROJECT,
    PROJECTS,
    SessionVisionApi,
)
from sources.http import ApiClient, ApiError, BearerAuth, HttpConfig
from tests.conftest import isolate, load_count
from tests.test_mobilenext_failures import run_cli

DAY_S = 86_400
KEYS = {"events": ("id",), "sessions": ("id",), "persons": ("id",),
        "event_definitions": ("name",), "property_definitions": ("key",),
        "action_definitions": ("id",)}
JSON_COLUMNS = {"properties", "example_values", "steps"}
PROMOTED = {"$current_url": "current_url", "$browser": "browser",
            "$device_type": "device_type", "$country": "country", "$referrer": "referrer"}


@pytest.fixture
def sessionvision(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[SessionVisionApi]:
    api = SessionVisionApi(parse_iso_ms(START), seed=3, visits_per_day=120, history_days=10,
                           late_share=0.08)
    with Served(api) as served:
        isolate(monkeypatch, tmp_path, {
            "SOURCES__SESSIONVISION__BASE_URL": served.url,
            "SOURCES__SESSIONVISION__API_TOKEN": DEMO_TOKEN,
            "SOURCES__SESSIONVISION__PROJECT_IDS": json.dumps(list(PROJECTS)),
            "SOURCES__SESSIONVISION__START_DATE": "2026-10-01",  # older than 7 days
        })
        api.url = served.url  # type: ignore[attr-defined]
        yield api


def loaded(table: str, destination: str = "duckdb") -> Dict[Tuple[str, ...], Dict[str, Any]]:
    """Rows of a table by (project_id, key...), asserting the keys are unique."""
    with connect(destination, resolve_location(destination, None)) as con:
        cur = con.execute(f"SELECT * FROM sessionvision.{table}")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    keyed = {(r["project_id"], *(str(r[k]) for k in KEYS[table])): r for r in rows}
    assert len(keyed) == len(rows), f"duplicate rows in {table}"
    return keyed


def _api_value(column: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_ms(round(value.timestamp() * 1000))
    if column in JSON_COLUMNS and isinstance(value, str):
        return json.loads(value)
    return value


def assert_equals_truth(api: SessionVisionApi, destination: str = "duckdb") -> Dict[str, Any]:
    """Every resource of both projects equals the API's records, field for field."""
    everything = {}
    for table, key in KEYS.items():
        rows = loaded(table, destination)
        live = {k: r for k, r in rows.items() if r.get("deleted_at") is None}
        truth = {(p, *(str(rec[k]) for k in key)): rec for p in PROJECTS
                 for rec in api.truth(p, table)}
        assert truth, f"the sandbox has no {table}"
        missing, extra = truth.keys() - live.keys(), live.keys() - truth.keys()
        assert not missing, f"{len(missing)} {table} missing, e.g. {sorted(missing)[:2]}"
        assert not extra, f"{len(extra)} {table} live in the warehouse but not in the API"
        for k, record in truth.items():
            row = rows[k]
            if table == "events":
                for prop, column in PROMOTED.items():
                    assert row[column] == record["properties"].get(prop), (k, column)
            for field, want in record.items():
                assert _api_value(field, row[field]) == want, f"{table} {k}.{field}"
        everything[table] = rows
    return everything


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
    sessionvision.reset_stats()
    loads = load_count("sessionvision")
    result = sync_source("sessionvision")
    assert result.ok, result.error
    assert load_count("sessionvision") == loads  # no load package, not even a state-only one
    assert "events" not in result.rows and "sessions" not in result.rows
    assert "persons" not in result.rows
    now = sessionvision.now_ms
    bound = 0
    for p in PROJECTS:
        recent = [e for e in sessionvision.truth(p, "events")
                  if parse_iso_ms(e["timestamp"]) >= now - MAX_DELAY_MS - 120_000]
        bound += math.ceil((len(recent) + 1) / 1000)  # the 48-hour event window
        bound += 3  # the three definition lists (each under 1,000 rows)
    assert 0 < len(sessionvision.requests) <= bound
    assert sessionvision.count(f"/api/v1/projects/{PROJECTS[0]}/sessions") == 0
    assert sessionvision.count(f"/api/v1/projects/{PROJECTS[0]}/persons") == 0
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

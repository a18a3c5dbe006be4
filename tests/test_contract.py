"""The contract every source keeps, run over every spec in `pipelines.registry.SOURCES`.

Modelled on the Singer SDK's standard tap tests (`singer_sdk/testing/tap_tests.py`): one suite,
generated for every source, each test an outcome a user relies on. Each runs the real pipeline
against the source's sandbox over real sockets into a real DuckDB file, and compares the
warehouse with the sandbox's truth (the comparisons in `tests/conftest.py`, which the chaos
rounds use too).

- A first run equals the truth, with every resource's primary key declared and unique and
  its high-water column a timestamp; a second run with nothing new writes nothing.
- A run killed (SIGKILL) at a random request, then run again, equals the truth.
- A refused partition (organization, tenant, project) fails alone: one line naming it, exit 1,
  the others loaded, and a later run loads it whole. A source
  without partitions (`SourceSpec.partition` is None: Tagbase, one account) has no such
  case; a refused key fails its whole run, which the credentials test covers.
- Bad credentials: one line, exit 1, the secret nowhere, nothing advanced.

Adding a source adds its spec to the registry and, here, its sandbox fixture (named after the
source, in `tests/conftest.py`), its truth comparison (`TRUTH`), the setting that carries its
credentials (`BAD_CREDENTIALS`) and, if it has partitions, how to refuse one (`REFUSED`).

The kill point is drawn from a seed printed on failure; replay with CONTRACT_SEED=<seed>.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from pipelines.registry import SOURCES
from pipelines.run import make_pipeline, sync_source
from pipelines.warehouse import connect, resolve_location
from sandbox.core import Request
from sandbox.session_services import TENANTS, token_for
from sandbox.sessionvision import OTHER_PROJECT, PROJECTS
from sources.spec import SourceSpec
from tests.conftest import CLI, ROOT, TRUTH, assert_quiet_run, run_cli

TENANT_A, TENANT_B = list(TENANTS)
# source -> (environment variable carrying its credentials, a wrong value, the wrong secret)
BAD_CREDENTIALS: Dict[str, Tuple[str, str, str]] = {
    "mobilenext": ("SOURCES__MOBILENEXT__API_KEY", "mob_wrong_key_7d1e0c55aa",
                   "mob_wrong_key_7d1e0c55aa"),
    "session_services": ("SOURCES__SESSION_SERVICES__TENANT_TOKENS",
                         json.dumps(dict.fromkeys(TENANTS, "sst_wrong_token_4be1c07d")),
                         "sst_wrong_token_4be1c07d"),
    "tagbase": ("SOURCES__TAGBASE__API_KEY", "key_demo01:wrong-secret-value-5e2a",
                "wrong-secret-value-5e2a"),
    "sessionvision": ("SOURCES__SESSIONVISION__API_TOKEN", "phx_wrong_token_0c9d8e7f6a",
                      "phx_wrong_token_0c9d8e7f6a"),
}


@dataclass
class Refusal:
    """How to make the API refuse one partition of a source, and what must load anyway."""

    env: Dict[str, str]  # settings under which one partition is refused
    refused: str  # the refused partition's id, named in the error line
    truth: Dict[str, Any]  # arguments restricting the truth comparison to the others


REFUSED: Dict[str, Refusal] = {
    "mobilenext": Refusal(  # org_solo exists, but the key is not a member of it
        {"SOURCES__MOBILENEXT__ORGANIZATION_IDS": '["org_solo", "org_acme"]'},
        "org_solo", {"orgs": ("org_acme",)}),
    "session_services": Refusal(  # tenant B is sent tenant A's token: 403 for B
        {"SOURCES__SESSION_SERVICES__TENANT_TOKENS": json.dumps(
            {TENANT_A: token_for(TENANT_A), TENANT_B: token_for(TENANT_A)})},
        TENANT_B, {"tenants": (TENANT_A,)}),
    "sessionvision": Refusal(  # the project exists, but the token may not read it
        {"SOURCES__SESSIONVISION__PROJECT_IDS": json.dumps([PROJECTS[0], OTHER_PROJECT])},
        OTHER_PROJECT, {"projects": (PROJECTS[0],)}),
}
SPECS = list(SOURCES.values())
PARTITIONED = [s for s in SPECS if s.partition is not None]


@pytest.fixture(params=SPECS, ids=lambda s: s.name)
def spec(request: pytest.FixtureRequest) -> SourceSpec:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def api(spec: SourceSpec, request: pytest.FixtureRequest) -> Any:
    """The source's sandbox, served, with sessionsync configured to sync it."""
    return request.getfixturevalue(spec.name)


def test_every_source_has_its_contract_cases() -> None:
    """The tables below cover every spec: a source cannot join the registry untested."""
    assert set(TRUTH) == set(SOURCES) == set(BAD_CREDENTIALS)
    assert set(REFUSED) == {s.name for s in PARTITIONED}


def test_first_run_equals_truth_and_second_run_writes_nothing(spec: SourceSpec,
                                                               api: Any) -> None:
    first = sync_source(spec.name)
    assert first.ok, first.error
    assert sum(first.rows.values()) > 0
    TRUTH[spec.name](api)
    assert_keys_unique_and_cursors_typed(spec)
    assert_quiet_run(api, spec.name)
    TRUTH[spec.name](api)


def test_run_killed_at_a_random_request_then_rerun_equals_truth(
        spec: SourceSpec, api: Any, tmp_path: Path) -> None:
    seed = int(os.environ.get("CONTRACT_SEED") or random.randrange(1_000_000))
    api.reset_stats()
    whole = sync_source(spec.name)  # how many requests a first run makes: the kill's range
    assert whole.ok, whole.error
    requests = len(api.requests)
    assert requests >= 2, f"{spec.name}: a first run made {requests} request(s)"
    forget_everything_loaded(tmp_path)
    at = random.Random(seed).randint(1, requests - 1)

    proc = subprocess.Popen([CLI, "sync", spec.name], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: List[Request] = []

    def kill_at(request: Request) -> None:
        seen.append(request)
        if len(seen) == at:
            os.kill(proc.pid, signal.SIGKILL)

    api.before_request = kill_at
    try:
        code = proc.wait(timeout=300)
    finally:
        api.before_request = None
    assert code == -signal.SIGKILL, (
        f"{spec.name}: the run was to be killed at request {at} of {requests} (seed {seed}, "
        f"replay with CONTRACT_SEED={seed}) but ended with {code}")

    again = sync_source(spec.name)
    assert again.ok, f"seed {seed}: {again.error}"
    TRUTH[spec.name](api)
    assert_keys_unique_and_cursors_typed(spec)


@pytest.mark.parametrize("spec", PARTITIONED, ids=lambda s: s.name, indirect=True)
def test_a_refused_partition_fails_alone(spec: SourceSpec, api: Any) -> None:
    refusal = REFUSED[spec.name]
    proc = run_cli("sync", spec.name, **refusal.env)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {spec.name}"), proc.stderr
    assert refusal.refused in lines[0], lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    TRUTH[spec.name](api, **refusal.truth)  # every other partition loaded, and only those
    # the refused partition's state was not touched: the next run loads all of it
    assert sync_source(spec.name).ok
    TRUTH[spec.name](api)


def test_bad_credentials_fail_with_one_line_and_advance_nothing(spec: SourceSpec, api: Any,
                                                               tmp_path: Path) -> None:
    variable, value, secret = BAD_CREDENTIALS[spec.name]
    proc = run_cli("sync", spec.name, **{variable: value})
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {spec.name}"), proc.stderr
    assert "HTTP 401" in lines[0] or "HTTP 403" in lines[0], lines[0]
    assert secret not in proc.stdout + proc.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"secret written to {path}"
    state = make_pipeline(spec.name, "duckdb", None).state.get("sources", {})
    assert not list(leaves(state)), f"a checkpoint moved with nothing loaded: {state}"
    assert loaded_rows(spec.name) == 0
    good = sync_source(spec.name)  # with the right credentials, everything loads
    assert good.ok, good.error
    TRUTH[spec.name](api)


def assert_keys_unique_and_cursors_typed(spec: SourceSpec) -> None:
    """Every resource declares a primary key that is unique in the warehouse, and every
    high-water column is a timestamp with time zone."""
    schema = make_pipeline(spec.name, "duckdb", None).default_schema
    with connect("duckdb", resolve_location("duckdb", None)) as con:
        for resource in spec.resources:
            if resource not in schema.tables:  # a resource that had nothing to load
                continue
            key = [c for c, col in schema.get_table_columns(resource).items()
                   if col.get("primary_key")]
            assert key, f"{spec.name}.{resource}: no primary key declared"
            cols = ", ".join(f'"{c}"' for c in key)
            total, distinct = con.execute(
                f'SELECT count(*), count(DISTINCT ({cols})) FROM "{spec.name}"."{resource}"'
            ).fetchone() or (0, 0)
            assert total == distinct, f"{spec.name}.{resource}: {total - distinct} duplicate keys"
        for resource, column in spec.high_water.items():
            found = con.execute(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = ? "
                "AND table_name = ? AND column_name = ?", [spec.name, resource, column]
            ).fetchone()
            assert found and found[0] == "TIMESTAMP WITH TIME ZONE", (
                f"{spec.name}.{resource}.{column} is {found}, not a timestamp with time zone")


def leaves(state: Any) -> Iterator[Any]:
    """The values in a nested state dict (its empty containers are no checkpoint)."""
    if isinstance(state, dict):
        for value in state.values():
            yield from leaves(value)
    else:
        yield state


def loaded_rows(source: str) -> int:
    """Rows in the data tables of `source`'s dataset (0 when nothing was ever loaded)."""
    if not Path(str(resolve_location("duckdb", None))).exists():
        return 0
    with connect("duckdb", resolve_location("duckdb", None)) as con:
        tables = [t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            [source]).fetchall() if not t.startswith("_dlt")]
        return sum(con.execute(f'SELECT count(*) FROM "{source}"."{t}"').fetchone()[0]
                   for t in tables)


def forget_everything_loaded(tmp_path: Path) -> None:
    """Remove the warehouse and dlt's working folder (as `isolate` placed them): the next
    run is a first run again, against the same sandbox."""
    shutil.rmtree(tmp_path / "pipelines", ignore_errors=True)
    for path in tmp_path.glob("warehouse*"):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


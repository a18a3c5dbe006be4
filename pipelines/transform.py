"""`sessionsync transform`: build the BI models of `dbt/` over a warehouse, and log the run.

dbt runs in a child process (`python -m dbt.cli.main`), so a crash, a memory blow-up or a
failing model ends that process only; its outcome is read back from dbt's own artifacts
(`run_results.json`, `sources.json`). The models write only the schemas `bi_staging` and
`bi`: a failed transform leaves every loaded table as it was, and a model whose test fails
keeps its previous build downstream (dbt skips what depends on it).

Where the models live (one dbt project, its dialect differences in dbt/macros/portable.sql):
- DuckDB warehouse: in the warehouse file itself, beside the loaded schemas.
- Local Delta folder: in `<folder>/sessionsync_bi.duckdb`, where every Delta table is a view
  over `delta_scan(...)` under the same `<source>.<table>` name.
- Postgres: in the database itself (dbt-postgres), schemas `bi_staging` and `bi`, so BI tools
  on any host read the marts where they read the synced tables.
- Delta on object storage: built in a DuckDB file in this host's working folder for the
  warehouse, over a snapshot of the source tables copied from the bucket, then published to
  the bucket as Delta tables `<warehouse>/bi/<mart>`, which BI tools read like the synced
  tables. The credentials stay in this process (a temporary DuckDB secret, delta-rs storage
  options): dbt never sees them, so no profile, log or artifact can hold them. The local file
  is a cache: incremental marts continue from it, and a host without it builds in full, which
  yields the same marts.

Locks: one transform at a time (the `transform` lock, on a shared warehouse in the warehouse
too). It reads no table while a sync writes it: on DuckDB it holds the file like a sync does;
elsewhere it holds every source's write lock (on Postgres the advisory locks, on object
storage the lock objects) for the whole run, so a sync that comes due meanwhile
is refused (exit 75) and runs at its next turn, and the transform is refused while a sync runs.
Postgres commits each table's merge atomically, but a run writes its tables one after another
and a replaced table is truncated before it is refilled; an incremental mart built from such a
state would keep its gap past the lookback, so the marts are built only between syncs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import duckdb
import yaml  # type: ignore[import-untyped]  # comes with dbt-core

from pipelines import alerts, bi_copy, remote, runlog, sharing
from pipelines.lock import LockedError, warehouse_lock
from pipelines.registry import SOURCES
from pipelines.warehouse import Location, connect, delta_tables, pipelines_dir, resolve_location
from sources.errors import SyncError
from sources.extensions import ensure_delta_extension

log = logging.getLogger("sessionsync")
DBT_DIR = Path(__file__).resolve().parent.parent / "dbt"
RUNLOG_SOURCE = "dbt"  # the run log's `source` for transforms; `resource` is a model
MARTS, STAGING = "bi", "bi_staging"
FAILED = {"error", "fail", "skipped", "runtime error"}


@dataclass
class TransformResult:
    """Outcome of one transform."""

    ok: bool
    error: Optional[str] = None
    locked: bool = False
    models: Dict[str, Optional[int]] = field(default_factory=dict)  # model -> rows (marts)
    tests: int = 0  # data tests that passed
    warnings: List[str] = field(default_factory=list)  # e.g. stale sources
    database: Optional[Location] = None  # where the marts are (a DuckDB file, Postgres, a URL)
    seconds: float = 0.0


def bi_database(destination: str, location: Location) -> Optional[Path]:
    """The DuckDB file the models are built in, None on Postgres (see the module docstring)."""
    if destination == "postgres":
        return None
    if isinstance(location, str):  # object storage: this host's build of the marts
        return pipelines_dir(destination, location) / "sessionsync_bi.duckdb"
    return location if destination == "duckdb" else location / "sessionsync_bi.duckdb"


def marts_location(destination: str, location: Location) -> Location:
    """Where BI tools read the marts: the DuckDB file, the Postgres database, or the bucket."""
    if destination == "postgres":
        return location
    if isinstance(location, str):
        return f"{location}/{MARTS}"
    return bi_database(destination, location) or location


def transform(destination: str = "duckdb", warehouse: Optional[str] = None,
              full_refresh: bool = False, mode: str = "manual",
              dbt_vars: Optional[str] = None) -> TransformResult:
    """Build every model whose source tables exist, run the tests and source freshness.

    Never raises: failures are in the result, and the run is appended to the run log
    (`sessionsync_ops.sessionsync_runs`, source `dbt`, one row per model) with `mode`.
    """
    started = time.perf_counter()
    try:
        location = resolve_location(destination, warehouse)
        folder = pipelines_dir(destination, location)
        with contextlib.ExitStack() as locks:
            # One transform at a time. On DuckDB dbt writes the warehouse file, so it holds
            # the file the way a sync does: syncs and readers wait for it, and it for them.
            # Other warehouses have no such lock: every source's write lock keeps syncs from
            # changing the tables while the models read them (see the module docstring).
            for name in ("transform", *(SOURCES if destination != "duckdb" else ())):
                locks.enter_context(warehouse_lock(name, destination, location))
            locks.enter_context(sharing.warehouse_access("transform", destination, location))
            result = _transform_locked(destination, location, folder, full_refresh, mode,
                                       dbt_vars)
            if result.ok and isinstance(location, Path) and destination == "duckdb":
                bi_copy.publish(location)  # BI tools read the marts in the copy
            elif result.ok and destination == "parquet" and isinstance(location, str):
                publish_marts(location, bi_database(destination, location))
    except LockedError as exc:
        result = TransformResult(ok=False, error=f"transform: {exc}", locked=True)
    except Exception as exc:  # one line for the user; the traceback goes to the debug log
        log.debug("transform failed", exc_info=True)
        result = TransformResult(ok=False, error=f"transform: {_one_line(exc)}")
    result.seconds = time.perf_counter() - started
    if not result.ok and not result.locked:  # alerted like a failed sync
        alerts.alert("run", RUNLOG_SOURCE, "transform", "failed", result.error)
    return result


def _transform_locked(destination: str, location: Location, folder: Path, full_refresh: bool,
                      mode: str, dbt_vars: Optional[str]) -> TransformResult:
    if destination == "duckdb" and isinstance(location, Path) and not location.exists():
        raise SyncError(f"no warehouse at {location}; run `sessionsync sync` first")
    database = bi_database(destination, location)
    if database is not None and destination == "parquet":
        delta_sources(location, database)
    present = existing_tables(destination, location, database)
    missing = [t for t in declared_sources() if t not in present]
    if not set(declared_sources()) - set(missing) - {f"{runlog.DATASET}.{runlog.TABLE}"}:
        raise SyncError(f"no synced tables in {location}; run `sessionsync sync` first")
    if missing:
        log.warning("transform: not built, their source tables are not loaded yet: %s",
                    ", ".join(missing))
    started = datetime.now(UTC)
    work = folder / "dbt"
    args = ["build", *(["--full-refresh"] if full_refresh else [])]
    for table in missing:
        args += ["--exclude", f"source:{table}+"]
    if dbt_vars:
        args += ["--vars", dbt_vars]
    build = run_dbt(args, destination, database, work)
    results = _artifact(work / "target" / "run_results.json")
    freshness_args = ["source", "freshness"]
    for table in missing:
        freshness_args += ["--exclude", f"source:{table}"]
    fresh = run_dbt(freshness_args, destination, database, work)
    freshness = _artifact(work / "target" / "sources.json")

    failures, warnings, statuses, passed = outcome(results, freshness)
    models: Dict[str, Optional[int]] = {}
    if not results:
        failures.append(f"dbt build failed: {_tail(build)}")
    if not freshness and fresh.returncode:
        failures.append(f"dbt source freshness failed: {_tail(fresh)}")
    if statuses:
        models = row_counts(destination, location, database,
                            [m for m, s in statuses.items() if s == "success"])
    error = "; ".join(failures) or None
    _log_run(destination, location, mode, started, statuses, models, error)
    return TransformResult(ok=not failures, error=f"transform: {error}" if error else None,
                           models={m: models.get(m) for m in statuses}, tests=passed,
                           warnings=warnings, database=marts_location(destination, location))


def outcome(results: List[Dict[str, Any]], freshness: List[Dict[str, Any]]
            ) -> Tuple[List[str], List[str], Dict[str, str], int]:
    """Failures, warnings, status per model and tests passed, from dbt's artifacts."""
    failures: List[str] = []
    warnings: List[str] = []
    statuses: Dict[str, str] = {}
    passed = 0
    for r in results:
        kind, _, name = r["unique_id"].split(".")[:3]  # test ids end in a hash
        if kind == "model":
            statuses[name] = r["status"]
        if r["status"] in FAILED:
            failures.append(f"{kind} {name} {r['status']}"
                            + (f": {_short(r.get('message'))}" if r.get("message") else ""))
        elif kind == "test":
            passed += 1
    for r in freshness:
        name = ".".join(r["unique_id"].split(".")[-2:])
        if r["status"] in ("error", "runtime error"):
            failures.append(f"source {name} is stale: newest {r.get('max_loaded_at')}"
                            if r["status"] == "error" else f"source {name} freshness failed")
        elif r["status"] == "warn":
            warnings.append(f"source {name}: newest record {r.get('max_loaded_at')}")
    return failures, warnings, statuses, passed


def run_dbt(args: Sequence[str], destination: str, database: Optional[Path],
            work: Path) -> subprocess.CompletedProcess:
    """One dbt command in a child process, against `database` (the DuckDB file) or the
    Postgres warehouse, with artifacts under `work`."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "DBT_VERSION_CHECK": "false", "DBT_USE_COLORS": "false",
           **(postgres_env() if destination == "postgres"
              else {"SESSIONSYNC_BI_PATH": str(database)})}
    profile = "postgres" if destination == "postgres" else "duckdb"
    command = [sys.executable, "-m", "dbt.cli.main", *args, "--target", profile,
               "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR),
               "--target-path", str(work / "target"), "--log-path", str(work / "logs")]
    target = work / "target"
    for artifact in ("run_results.json", "sources.json"):
        (target / artifact).unlink(missing_ok=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    log.debug("dbt %s exited %s:\n%s", " ".join(args), done.returncode, done.stdout[-4000:])
    return done


def postgres_env() -> Dict[str, str]:
    """The Postgres profile's settings (dbt/profiles.yml), from dlt's credentials.

    The password goes in a `DBT_ENV_SECRET_` variable, which dbt masks in its logs and keeps
    out of its artifacts; `PGTZ` makes every session's days and weeks UTC ones.
    """
    creds = remote.postgres_credentials()
    env = {"SESSIONSYNC_PG_HOST": str(creds.host), "SESSIONSYNC_PG_PORT": str(creds.port),
           "SESSIONSYNC_PG_USER": str(creds.username),
           "SESSIONSYNC_PG_DATABASE": str(creds.database),
           "DBT_ENV_SECRET_SESSIONSYNC_PG_PASSWORD": str(creds.password or ""), "PGTZ": "UTC"}
    sslmode = (getattr(creds, "query", None) or {}).get("sslmode")
    if sslmode:
        env["PGSSLMODE"] = str(sslmode)
    return env


def delta_sources(location: Location, database: Path) -> None:
    """Make every Delta table the models read `<source>.<table>` in `database`: a view over
    `delta_scan(...)` for a local folder; for object storage a copy, taken under the source
    locks (so one consistent state), which dbt reads without the bucket's credentials."""
    ensure_delta_extension()
    database.parent.mkdir(parents=True, exist_ok=True)
    wanted = set(declared_sources())
    with duckdb.connect(str(database)) as con:
        con.execute("LOAD delta")
        kind = "VIEW"
        if isinstance(location, str):
            remote.attach_s3(con, location)
            kind = "TABLE"
        present = set()
        for schema, table, path in delta_tables(location):
            if f"{schema}.{table}" not in wanted:
                continue
            present.add(f"{schema}.{table}")
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            con.execute(f'CREATE OR REPLACE {kind} "{schema}"."{table}" AS '
                        f"SELECT * FROM delta_scan({remote.sql_string(path)})")
        for gone in sorted(wanted - present):  # reset since the last build: not a stale copy
            schema, table = gone.split(".", 1)
            con.execute(f'DROP {kind} IF EXISTS "{schema}"."{table}"')


def publish_marts(location: str, database: Optional[Path]) -> None:
    """Write every mart of the local build to `<location>/bi/<mart>` as a Delta table (one
    overwrite commit each: readers see the previous build or this one, never a mix)."""
    from deltalake import write_deltalake

    assert database is not None
    _, options = remote.object_store(location)
    with duckdb.connect(str(database), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        for (mart,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
                "AND table_type = 'BASE TABLE' ORDER BY 1", [MARTS]).fetchall():
            rows = con.execute(f'SELECT * FROM {MARTS}."{mart}"').fetch_arrow_table()
            write_deltalake(f"{location}/{MARTS}/{mart}", rows, mode="overwrite",
                            schema_mode="overwrite", storage_options=options)


def declared_sources() -> List[str]:
    """`source.table` of every table the dbt project reads (dbt/models/staging/sources.yml)."""
    spec = yaml.safe_load((DBT_DIR / "models" / "staging" / "sources.yml").read_text())
    return [f"{s['name']}.{t['name']}" for s in spec["sources"] for t in s["tables"]]


def _open(destination: str, location: Location, database: Optional[Path]
          ) -> duckdb.DuckDBPyConnection:
    """The DuckDB file the models are built in, or the Postgres warehouse attached."""
    if database is None:
        return connect(destination, location)
    return duckdb.connect(str(database), read_only=True)


def existing_tables(destination: str, location: Location, database: Optional[Path]) -> set:
    """`schema.table` of every table and view where the models run (empty when missing)."""
    if database is not None and not database.exists():
        return set()
    with _open(destination, location, database) as con:
        rows = con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                           "WHERE table_catalog = current_database()")
        return {f"{s}.{t}" for s, t in rows.fetchall()}


def row_counts(destination: str, location: Location, database: Optional[Path],
               models: Sequence[str]) -> Dict[str, Optional[int]]:
    """Rows of each built mart (staging models are views: not counted)."""
    counts: Dict[str, Optional[int]] = {}
    with _open(destination, location, database) as con:
        marts = {t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables "
            f"WHERE table_catalog = current_database() AND table_schema = '{MARTS}' "
            "AND table_type = 'BASE TABLE'").fetchall()}
        for model in models:
            row = (con.execute(f'SELECT count(*) FROM {MARTS}."{model}"').fetchone()
                   if model in marts else None)
            counts[model] = row[0] if row else None
    return counts


def _log_run(destination: str, location: Location, mode: str, started: datetime,
             statuses: Dict[str, str], rows: Dict[str, Optional[int]],
             error: Optional[str]) -> None:
    run_id, finished = uuid.uuid4().hex, datetime.now(UTC)
    entries = [{
        "run_id": run_id, "source": RUNLOG_SOURCE, "resource": model, "mode": mode,
        "started_at": started, "finished_at": finished,
        "status": "failed" if status in FAILED else "ok", "rows_loaded": rows.get(model),
        "pages": 0, "requests": 0, "retries": 0, "rate_limit_waits": 0,
        "high_water_mark": None, "error": error,
    } for model, status in sorted(statuses.items()) or [("build", "error")]]
    runlog.write(entries, RUNLOG_SOURCE, destination, location)


def _artifact(path: Path) -> List[Dict[str, Any]]:
    """The `results` of a dbt artifact the command just wrote, or [] when it wrote none."""
    if not path.exists():
        return []
    return list(json.loads(path.read_text()).get("results", []))


def _tail(done: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "rror" in ln] or lines
    return _short(errors[-1] if errors else f"exit code {done.returncode}")


def _short(text: Any) -> str:
    return " ".join(str(text).split())[:300]


def _one_line(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, SyncError) else f"{type(exc).__name__}: {_short(exc)}"

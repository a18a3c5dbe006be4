"""The `sessionsync` command line: thin commands that hand off to `pipelines`."""

from __future__ import annotations

import gc
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typing_extensions import Annotated

from pipelines import alerts, logs, settings
from pipelines.aftermath import counts_text
from pipelines.lock import LOCKED_EXIT_CODE
from pipelines.registry import SOURCES
from pipelines.run import SyncResult
from pipelines.run import sync as run_sync
from sources.errors import SyncError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Keep a warehouse in step with Session Services, Tagbase, Mobile Next "
                       "and sessionvision.")
out = Console()
err = Console(stderr=True)
_verbose = {"on": False}
ALERT_WAIT_SECONDS = 30.0  # how long a command waits, at its end, for alerts in flight


@app.callback()
def main_options(verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Log every HTTP request and scheduler step (DEBUG).")] = False,
) -> None:
    """Keep a warehouse in step with Session Services, Tagbase, Mobile Next and sessionvision."""
    logs.setup(verbose)
    _verbose["on"] = verbose


Destination = Annotated[str, typer.Option(
    help="duckdb (one file), parquet (Delta tables, local or s3://) or postgres.")]
Warehouse = Annotated[Optional[str], typer.Option(
    help="DuckDB file, or Delta folder / s3://bucket/path; default warehouse/sessionsync.duckdb "
         "or warehouse/files under SESSIONSYNC_HOME or the current folder. Postgres: see "
         "[destination.postgres.credentials].")]


def _error(message: object) -> None:
    """One `error: ...` line on stderr, printed as is (no rich markup, no wrapping)."""
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)


def _report(results: List[SyncResult]) -> int:
    """Print one line per source; return the exit code.

    0: every source synced. 75: a source was refused because another run holds its lock
    (and nothing else failed). 1: anything else failed.
    """
    for r in results:
        rows = counts_text(r.rows)
        if r.ok or r.rows:
            out.print(f"{r.source}: {'ok' if r.ok else 'partly loaded'} ({rows})", highlight=False)
        if not r.ok:
            _error(r.error)
    failed = [r for r in results if not r.ok]
    if not failed:
        return 0
    return LOCKED_EXIT_CODE if all(r.locked for r in failed) else 1


@app.command()
def sync(
    sources: Annotated[Optional[List[str]], typer.Argument(
        help="Sources to sync; default: SESSIONSYNC__ENABLED_SOURCES (all four).")] = None,
    destination: Destination = "duckdb",
    warehouse: Warehouse = None,
    then_transform: Annotated[bool, typer.Option(
        "--transform", help="Then rebuild the BI marts (as `sessionsync transform`).")] = False,
) -> None:
    """Sync sources into the warehouse (incremental)."""
    names = sources or settings.names("sessionsync.enabled_sources")
    with out.status(f"syncing {', '.join(names)}…") if out.is_terminal else _nothing():
        results = run_sync(names, destination, warehouse)
    code = _report(results)
    if then_transform:
        code = max(code, _transformed(destination, warehouse, full_refresh=False))
    alerts.flush(ALERT_WAIT_SECONDS)
    raise typer.Exit(code)


def _transformed(destination: str, warehouse: Optional[str], full_refresh: bool,
                 dbt_vars: Optional[str] = None) -> int:
    """Run the BI transform, print its outcome, return its exit code (0, 1, or 75 locked)."""
    from pipelines.transform import transform as run_transform

    with out.status("building the BI marts…") if out.is_terminal else _nothing():
        result = run_transform(destination, warehouse, full_refresh=full_refresh,
                               dbt_vars=dbt_vars)
    if result.warnings:
        out.print(f"warning: {len(result.warnings)} source(s) older than their freshness bound: "
                  + "; ".join(result.warnings), highlight=False, soft_wrap=True)
    if not result.ok:
        _error(result.error)
        return LOCKED_EXIT_CODE if result.locked else 1
    marts = ", ".join(f"{m}={n}" for m, n in sorted(result.models.items()) if n is not None)
    out.print(f"transform: ok, {len(result.models)} models, {result.tests} tests passed in "
              f"{result.seconds:.0f}s, marts in {result.database} ({marts})", highlight=False,
              soft_wrap=True)
    return 0


@app.command()
def transform(
    destination: Destination = "duckdb",
    warehouse: Warehouse = None,
    full_refresh: Annotated[bool, typer.Option(
        help="Rebuild incremental marts from all history.")] = False,
    dbt_vars: Annotated[Optional[str], typer.Option(
        "--vars", help="dbt vars (YAML), e.g. '{funnel_steps: [a, b, c]}'.")] = None,
) -> None:
    """Build the BI marts (dbt/) over the warehouse; exits 1 if a model or test fails."""
    code = _transformed(destination, warehouse, full_refresh, dbt_vars)
    alerts.flush(ALERT_WAIT_SECONDS)
    raise typer.Exit(code)


@app.command()
def report(
    destination: Destination = "duckdb",
    warehouse: Warehouse = None,
    output: Annotated[Optional[str], typer.Option(
        help="HTML file to write; default: report.html beside the marts.")] = None,
) -> None:
    """Write the BI report: one self-contained HTML page of the marts' headline charts."""
    from pipelines.report import write_report

    try:
        path = write_report(destination, warehouse, output)
    except SyncError as exc:
        _error(exc)
        raise typer.Exit(1) from None
    out.print(f"report: {path}", highlight=False, soft_wrap=True)


@app.command()
def backfill(
    source: Annotated[str, typer.Argument(help=" or ".join(
        n for n, s in SOURCES.items() if s.backfill) + ".")],
    start: Annotated[str, typer.Option(help="Window start (ISO date or time, inclusive).")],
    end: Annotated[Optional[str], typer.Option(help="Window end (exclusive); default now.")] = None,
    chunk: Annotated[Optional[str], typer.Option(
        help="Chunk length, e.g. 7d, 12h; default: whole days, as many per run as make "
             "about 200,000 rows.")] = None,
    resource: Annotated[Optional[List[str]], typer.Option(
        help="Resource to load (repeatable); default: the source's time-windowed ones.")] = None,
    destination: Destination = "duckdb",
    warehouse: Warehouse = None,
) -> None:
    """Load a historical window in chunks; a rerun continues after the last finished chunk."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from pipelines.backfill import backfill as run_backfill

    started, totals = time.perf_counter(), {"rows": 0, "pages": 0}
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} chunks"), TimeRemainingColumn(),
                  console=err, disable=not err.is_terminal) as bar:
        task = bar.add_task(f"backfill {source}", total=None)

        def report(done: int, total: int, piece: Any, result: Any) -> None:
            if result is not None:
                totals["rows"] += sum(result.rows.values())
                totals["pages"] += result.pages
            rate = totals["rows"] / max(time.perf_counter() - started, 1e-6)
            bar.update(task, total=total, completed=done,
                       description=f"backfill {source}: {totals['rows']} rows, "
                                   f"{totals['pages']} pages, {rate:,.0f} rows/s")
            if not err.is_terminal:
                what = "already loaded" if result is None else (
                    f"{sum(result.rows.values())} rows" if result.ok else "failed")
                out.print(f"chunk {done}/{total} {piece.start:%Y-%m-%d %H:%M} .. "
                          f"{piece.end:%Y-%m-%d %H:%M}: {what}", highlight=False)

        result = run_backfill(source, start, end, chunk, resource, destination, warehouse,
                              on_chunk=report)
    alerts.flush(ALERT_WAIT_SECONDS)
    if not result.ok:
        _error(result.error)
        raise typer.Exit(LOCKED_EXIT_CODE if result.locked else 1)
    rows = counts_text(result.rows)
    out.print(f"{source}: backfill ok, {result.chunks - result.skipped} chunks loaded, "
              f"{result.skipped} already done ({rows})", highlight=False)


@app.command()
def schedule(destination: Destination = "duckdb", warehouse: Warehouse = None) -> None:
    """Run every enabled source on its schedule (cron or interval_seconds) until stopped."""
    from schedules.scheduler import build_scheduler, run_until_stopped

    logs.setup(_verbose["on"], logging.INFO, timestamps=True)
    names = settings.names("sessionsync.enabled_sources")
    try:
        scheduler = build_scheduler(names, destination, warehouse)
    except SyncError as exc:
        _error(exc)
        raise typer.Exit(1) from None
    for job in scheduler.get_jobs():
        out.print(f"{job.name}: {job.trigger}, next run {job.next_run_time:%Y-%m-%d %H:%M:%S %Z}",
                  highlight=False, markup=False)
    run_until_stopped(scheduler)
    out.print("scheduler stopped", highlight=False)


@app.command()
def status(
    sources: Annotated[Optional[List[str]], typer.Argument(
        help="Sources to report; default: SESSIONSYNC__ENABLED_SOURCES (all four).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    destination: Destination = "duckdb",
    warehouse: Warehouse = None,
) -> None:
    """Freshness per source and resource; exits 1 if any is staler than its max_lag."""
    from pipelines.status import alert_stale, next_runs
    from pipelines.status import status as get_status
    from pipelines.warehouse import resolve_location

    names = sources or settings.names("sessionsync.enabled_sources")
    try:
        entries = get_status(names, destination, resolve_location(destination, warehouse))
    except SyncError as exc:
        _error(exc)
        raise typer.Exit(1) from None
    alert_stale(entries)
    if as_json:
        out.print_json(json.dumps([e.as_json() for e in entries]))
    else:
        # piped (cron, a log), rich would squeeze the table into 80 columns
        out.print(_status_table(entries, next_runs()), width=None if out.is_terminal else 200)
    alerts.flush(ALERT_WAIT_SECONDS)
    raise typer.Exit(1 if any(e.stale for e in entries) else 0)


def _status_table(entries: List[Any], upcoming: Dict[str, Any]) -> Table:
    """Status for people: one row per resource."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name, justify in (("source", "left"), ("resource", "left"), ("rows", "right"),
                          ("last ok", "left"), ("lag", "right"), ("next run", "left"),
                          ("last error", "left")):
        table.add_column(name, justify=justify,  # type: ignore[arg-type]
                         overflow="fold", no_wrap=name != "last error")
    for e in entries:
        lag = "-" if e.lag_seconds is None else f"{e.lag_seconds / 3600:.1f}h"
        if e.stale:
            lag += " STALE"
        when = f"{e.last_success:%Y-%m-%d %H:%M}" if e.last_success else "never"
        upcoming_run = upcoming.get(e.source)
        next_run = f"{upcoming_run:%Y-%m-%d %H:%M}" if upcoming_run else "-"
        table.add_row(e.source, e.resource, f"{e.rows or 0:,}", when, lag, next_run,
                      Text(e.last_error or ""))
    return table


@app.command()
def sandbox(
    env_file: Annotated[Optional[Path], typer.Option(
        help="Also write the export lines to this file, for `source PATH`.")] = None,
    free_ports: Annotated[bool, typer.Option(
        help="Serve on free ports instead of 8401-8404 (several sandboxes at once).")] = False,
) -> None:
    """Serve the simulated APIs on loopback ports until interrupted."""
    from sandbox.serve import export_lines, serve_all

    servers = serve_all(fixed_ports=not free_ports)
    lines = export_lines({n: s.url for n, s in servers.items()})
    if env_file is not None:
        env_file.write_text("\n".join(lines) + "\n")
    # plain prints: rich would wrap a long export line at the terminal width
    for name, server in servers.items():
        print(f"{name}: {server.url}")
    print("\nPoint sessionsync at them with:" + (f" (also in {env_file})" if env_file else ""))
    print("\n".join(lines), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers.values():
            server.stop()


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Folder to set up; default the current one.")]
        = Path("."),
    source: Annotated[Optional[List[str]], typer.Option(
        help="Source to configure (repeatable); default every source.")] = None,
) -> None:
    """Write a starting .dlt/config.toml and .dlt/secrets.toml; never overwrites."""
    from pipelines.init import init as write_templates

    try:
        written = write_templates(folder, source or [])
    except SyncError as exc:
        _error(exc)
        raise typer.Exit(1) from None
    for path in written:
        out.print(f"wrote {path}", highlight=False, soft_wrap=True)


@app.command()
def reset(
    source: Annotated[str, typer.Argument(help="Source to reset.")],
    resource: Annotated[Optional[List[str]], typer.Option(
        help="Resource to reset (repeatable); default every resource of the source.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
        = False,
    destination: Destination = "duckdb",
    warehouse: Warehouse = None,
) -> None:
    """Drop a source's (or resources') tables and state; the next sync reloads from the start."""
    from pipelines.lock import LockedError
    from pipelines.reset import reset as run_reset

    what = f"{source} ({', '.join(resource)})" if resource else f"every resource of {source}"
    if not yes and not typer.confirm(f"Drop the tables and state of {what}?", err=True):
        _error("reset cancelled")
        raise typer.Exit(1)
    try:
        result = run_reset(source, resource, destination, warehouse)
    except LockedError as exc:
        _error(exc)
        raise typer.Exit(LOCKED_EXIT_CODE) from None
    except SyncError as exc:
        _error(exc)
        raise typer.Exit(1) from None
    out.print(f"{source}: reset {', '.join(result.resources)}; dropped "
              f"{', '.join(result.tables) or 'no tables'}; the next sync reloads them",
              highlight=False, soft_wrap=True)


@app.command()
def demo(warehouse: Warehouse = None) -> None:
    """Start the sandbox, sync every source into DuckDB, build the BI marts and report."""
    from pipelines.demo import BI_QUERY, run_demo

    results, counts, bi_rows, seconds = run_demo(warehouse)
    code = _report(results)
    out.print("\nRows per table:")
    for table, n in counts.items():
        out.print(f"  {table:<40} {n:>10}", highlight=False)
    out.print(f"\nExample BI query:\n{BI_QUERY}\n", soft_wrap=True, highlight=False)
    for row in bi_rows:
        out.print("  " + " | ".join(str(v) for v in row), highlight=False)
    if code == 0:  # the BI marts (schema `bi`) and the report over them
        code = _transformed("duckdb", warehouse, full_refresh=False)
    if code == 0:
        from pipelines.report import write_report

        out.print(f"report: {write_report('duckdb', warehouse)}", highlight=False, soft_wrap=True)
    out.print(f"\ndemo finished in {seconds:.1f}s", highlight=False)
    raise typer.Exit(code)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> None:
    try:
        app()
    except SyncError as exc:  # a setting read before a command's own error handling
        _error(exc)
        raise SystemExit(1) from None
    finally:
        # The process ends here. Python's shutdown runs the garbage collector over every
        # object left (the imports alone leave 100,000); frozen, they are skipped, and
        # exiting takes a tenth of the time (0.5-0.75 s -> 0.07 s at load 20; see
        # docs/performance.md, "Round 2, noop"). Files and connections are closed by then.
        gc.freeze()


if __name__ == "__main__":
    main()

"""The `sessionsync` command line: thin commands that hand off to `pipelines`."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, List, Optional

import dlt
import typer
from rich.console import Console
from typing_extensions import Annotated

from pipelines.lock import LOCKED_EXIT_CODE
from pipelines.run import SyncResult
from pipelines.run import sync as run_sync
from sources.http import SyncError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Keep a warehouse in step with Session Services, Tagbase, Mobile Next "
                       "and sessionvision.")
out = Console()
err = Console(stderr=True)

Destination = Annotated[str, typer.Option(help="duckdb (one file) or parquet (Delta tables).")]
Warehouse = Annotated[Optional[str], typer.Option(
    help="DuckDB file or file-warehouse folder; default from .dlt/config.toml [sessionsync].")]


def _report(results: List[SyncResult]) -> int:
    """Print one line per source; return the exit code.

    0: every source synced. 75: a source was refused because another run holds its lock
    (and nothing else failed). 1: anything else failed.
    """
    for r in results:
        rows = ", ".join(f"{t}={n}" for t, n in sorted(r.rows.items())) or "nothing new"
        if r.ok or r.rows:
            out.print(f"{r.source}: {'ok' if r.ok else 'partly loaded'} ({rows})", highlight=False)
        if not r.ok:
            err.print(f"error: {r.error}", highlight=False, soft_wrap=True)
    failed = [r for r in results if not r.ok]
    if not failed:
        return 0
    return LOCKED_EXIT_CODE if all(r.locked for r in failed) else 1


@app.command()
def sync(
    sources: Annotated[Optional[List[str]], typer.Argument(
        help="Sources to sync; default: [sessionsync] enabled_sources.")] = None,
    destination: Destination = "duckdb",
    warehouse: Warehouse = None,
    then_transform: Annotated[bool, typer.Option(
        "--transform", help="Then rebuild the BI marts (as `sessionsync transform`).")] = False,
) -> None:
    """Sync sources into the warehouse (incremental)."""
    names = sources or list(dlt.config["sessionsync.enabled_sources"])
    with out.status(f"syncing {', '.join(names)}…") if out.is_terminal else _nothing():
        results = run_sync(names, destination, warehouse)
    code = _report(results)
    if then_transform:
        code = max(code, _transformed(destination, warehouse, full_refresh=False))
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
        err.print(f"error: {result.error}", highlight=False, soft_wrap=True)
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
    raise typer.Exit(_transformed(destination, warehouse, full_refresh, dbt_vars))


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
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    out.print(f"report: {path}", highlight=False, soft_wrap=True)


@app.command()
def backfill(
    source: Annotated[str, typer.Argument(help="mobilenext or sessionvision.")],
    start: Annotated[str, typer.Option(help="Window start (ISO date or time, inclusive).")],
    end: Annotated[Optional[str], typer.Option(help="Window end (exclusive); default now.")] = None,
    chunk: Annotated[str, typer.Option(help="Chunk length, e.g. 7d, 12h.")] = "7d",
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
    if not result.ok:
        err.print(f"error: {result.error}", highlight=False, soft_wrap=True)
        raise typer.Exit(LOCKED_EXIT_CODE if result.locked else 1)
    rows = ", ".join(f"{t}={n}" for t, n in sorted(result.rows.items())) or "nothing new"
    out.print(f"{source}: backfill ok, {result.chunks - result.skipped} chunks loaded, "
              f"{result.skipped} already done ({rows})", highlight=False)


@app.command()
def schedule(destination: Destination = "duckdb", warehouse: Warehouse = None) -> None:
    """Run every enabled source on its schedule ([schedules.<source>]) until stopped."""
    from schedules.scheduler import build_scheduler, run_until_stopped

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    names = list(dlt.config["sessionsync.enabled_sources"])
    try:
        scheduler = build_scheduler(names, destination, warehouse)
    except SyncError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for job in scheduler.get_jobs():
        out.print(f"{job.name}: {job.trigger}, next run {job.next_run_time:%Y-%m-%d %H:%M:%S %Z}",
                  highlight=False)
    run_until_stopped(scheduler)
    out.print("scheduler stopped", highlight=False)


@app.command()
def status(
    sources: Annotated[Optional[List[str]], typer.Argument(
        help="Sources to report; default: [sessionsync] enabled_sources.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    destination: Destination = "duckdb",
    warehouse: Warehouse = None,
) -> None:
    """Freshness per source and resource; exits 1 if any is staler than its max_lag."""
    from pipelines.status import status as get_status
    from pipelines.warehouse import resolve_location

    names = sources or list(dlt.config["sessionsync.enabled_sources"])
    try:
        entries = get_status(names, destination, resolve_location(destination, warehouse))
    except SyncError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        out.print_json(json.dumps([e.as_json() for e in entries]))
    else:
        for e in entries:
            lag = "-" if e.lag_seconds is None else f"{e.lag_seconds / 3600:.1f}h"
            when = f"{e.last_success:%Y-%m-%d %H:%M}" if e.last_success else "never"
            flag = " STALE" if e.stale else ""
            out.print(f"{e.source}.{e.resource}: rows {e.rows}, last ok {when}, lag {lag}"
                      f"{flag}" + (f", last error: {e.last_error}" if e.last_error else ""),
                      highlight=False, soft_wrap=True)
    raise typer.Exit(1 if any(e.stale for e in entries) else 0)


@app.command()
def sandbox() -> None:
    """Serve the simulated APIs on fixed loopback ports until interrupted."""
    from sandbox.serve import demo_env, serve_all

    servers = serve_all(fixed_ports=True)
    for name, server in servers.items():
        out.print(f"{name}: {server.url}")
    out.print("\nPoint sessionsync at them with:")
    for key, value in demo_env({n: s.url for n, s in servers.items()}).items():
        out.print(f"export {key}='{value}'", highlight=False)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers.values():
            server.stop()


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
    app()


if __name__ == "__main__":
    main()

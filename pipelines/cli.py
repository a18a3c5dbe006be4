"""The `sessionsync` command line: thin commands that hand off to `pipelines`."""

from __future__ import annotations

import time
from typing import List, Optional

import dlt
import typer
from rich.console import Console
from typing_extensions import Annotated

from pipelines.run import SyncResult
from pipelines.run import sync as run_sync

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Keep a warehouse in step with Session Services, Tagbase, Mobile Next "
                       "and sessionvision.")
out = Console()
err = Console(stderr=True)

Destination = Annotated[str, typer.Option(help="duckdb (one file) or parquet (Delta tables).")]
Warehouse = Annotated[Optional[str], typer.Option(
    help="DuckDB file or file-warehouse folder; default from .dlt/config.toml [sessionsync].")]


def _report(results: List[SyncResult]) -> int:
    """Print one line per source; return the exit code (1 if any source failed)."""
    for r in results:
        rows = ", ".join(f"{t}={n}" for t, n in sorted(r.rows.items())) or "nothing new"
        if r.ok or r.rows:
            out.print(f"{r.source}: {'ok' if r.ok else 'partly loaded'} ({rows})", highlight=False)
        if not r.ok:
            err.print(f"error: {r.error}", highlight=False, soft_wrap=True)
    return 0 if all(r.ok for r in results) else 1


@app.command()
def sync(
    sources: Annotated[Optional[List[str]], typer.Argument(
        help="Sources to sync; default: [sessionsync] enabled_sources.")] = None,
    destination: Destination = "duckdb",
    warehouse: Warehouse = None,
) -> None:
    """Sync sources into the warehouse (incremental)."""
    names = sources or list(dlt.config["sessionsync.enabled_sources"])
    with out.status(f"syncing {', '.join(names)}…") if out.is_terminal else _nothing():
        results = run_sync(names, destination, warehouse)
    raise typer.Exit(_report(results))


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
    """Start the sandbox, sync every source into DuckDB, print row counts and a BI query."""
    from pipelines.demo import BI_QUERY, run_demo

    results, counts, bi_rows, seconds = run_demo(warehouse)
    code = _report(results)
    out.print("\nRows per table:")
    for table, n in counts.items():
        out.print(f"  {table:<40} {n:>10}", highlight=False)
    out.print(f"\nExample BI query:\n{BI_QUERY}\n", soft_wrap=True, highlight=False)
    for row in bi_rows:
        out.print("  " + " | ".join(str(v) for v in row), highlight=False)
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

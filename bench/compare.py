"""Side by side on the sandbox: sessionsync backfill, dlt's generic rest_api_source, a fetch floor.

    .venv/bin/python -m bench.compare --events 1000000 --sessions 200000

For sessionvision events and Mobile Next sessions it runs, each in a fresh process against
the same sandbox (served by a process of its own, so it shares no CPU time with the client):
(a) `sessionsync backfill` into DuckDB and into the Parquet/Delta warehouse, (b) a
`rest_api_source` configuration with dlt's defaults into DuckDB, (c) an httpx loop that pages
the same endpoint and parses each page, storing nothing. It prints rows/s, requests/s, client
CPU seconds, peak RSS and the sandbox's CPU seconds, then the ratios a/b and a/c.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Tuple

import httpx
import orjson

from sandbox.core import Served, iso_ms, parse_iso_ms
from sandbox.serve import START

DAYS = 30
WINDOW = (iso_ms(parse_iso_ms(START) - (DAYS + 1) * 86_400_000), iso_ms(parse_iso_ms(START)))
CASES = ["sessionsync-duckdb", "sessionsync-parquet", "rest_api-duckdb", "fetch-floor"]


# -- the sandbox process ---------------------------------------------------------------------
def serve(source: str, size: int) -> None:
    """Build the sandbox world and serve it until stdin closes; prints `READY <url>`."""
    if source == "sessionvision":
        from sandbox.sessionvision import SessionVisionApi
        api: Any = SessionVisionApi(parse_iso_ms(START), seed=5, history_days=DAYS,
                                    visits_per_day=size / DAYS / 1.5 / 6.6, late_share=0)
    else:
        from sandbox.mobilenext import MobileNextApi
        api = MobileNextApi(parse_iso_ms(START), seed=5, sessions_per_day=size / DAYS / 1.6,
                            history_days=DAYS, deletions_per_day=0)
    gc.freeze()  # the built world is permanent: the collector no longer rescans its records
    with Served(api) as served:
        _floor(source, served.url)  # every page served once: each case then gets them cached
        print("READY", served.url, flush=True)
        sys.stdin.read()


# -- one case in its own process --------------------------------------------------------------
def run_case(source: str, case: str, url: str) -> Dict[str, Any]:
    """Load (or fetch) every record of the source's main endpoint once; returns measurements."""
    tmp = tempfile.mkdtemp()
    os.environ.update({"SESSIONSYNC__PIPELINES_DIR": f"{tmp}/pipelines",
                       "SESSIONSYNC__WAREHOUSE": f"{tmp}/w.duckdb",
                       "SESSIONSYNC__FILE_WAREHOUSE": f"{tmp}/files",
                       "RUNTIME__LOG_LEVEL": "WARNING"})
    os.environ.update(_source_env(source, url))
    # Each case imports what it needs before the clock starts: this measures throughput, not
    # interpreter start (which the no-op benchmark, bench.noop, does include).
    if case.startswith("sessionsync"):
        from pipelines.backfill import backfill
    elif case == "rest_api-duckdb":
        from dlt.sources.rest_api import rest_api_source  # noqa: F401
    t0, rows = time.perf_counter(), 0
    if case.startswith("sessionsync"):
        resource_name = "events" if source == "sessionvision" else "sessions"
        result = backfill(source, WINDOW[0], WINDOW[1], f"{DAYS + 1}d", [resource_name],
                          case.split("-")[1])
        assert result.ok, result.error
        rows = result.rows[resource_name]
    elif case == "rest_api-duckdb":
        rows = _rest_api(source, url, tmp)
    else:
        rows = _floor(source, url)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"rows": rows, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mb": usage.ru_maxrss / 1024}


def _source_env(source: str, url: str) -> Dict[str, str]:
    if source == "sessionvision":
        from sandbox.sessionvision import DEMO_TOKEN, PROJECTS
        return {"SOURCES__SESSIONVISION__BASE_URL": url,
                "SOURCES__SESSIONVISION__API_TOKEN": DEMO_TOKEN,
                "SOURCES__SESSIONVISION__PROJECT_IDS": json.dumps(list(PROJECTS)),
                "SOURCES__SESSIONVISION__START_DATE": WINDOW[0]}
    from sandbox.mobilenext import DEMO_KEY
    return {"SOURCES__MOBILENEXT__BASE_URL": url, "SOURCES__MOBILENEXT__API_KEY": DEMO_KEY,
            "SOURCES__MOBILENEXT__ORGANIZATION_IDS": "[]",
            "SOURCES__MOBILENEXT__START_DATE": WINDOW[0]}


def _endpoints(source: str) -> List[Tuple[str, Dict[str, Any], Dict[str, str], str]]:
    """(path, params, headers, cursor parameter) of each partition's main list."""
    if source == "sessionvision":
        from sandbox.sessionvision import PROJECTS
        return [(f"/api/v1/projects/{p}/events", {"date_from": WINDOW[0], "limit": 1000}, {},
                 "cursor") for p in PROJECTS]
    return [("/api/v1/sessions", {"limit": 500}, {"X-Organization-Id": org}, "before")
            for org in ("org_acme", "org_beta")]


def _token(source: str) -> str:
    if source == "sessionvision":
        from sandbox.sessionvision import DEMO_TOKEN
        return DEMO_TOKEN
    from sandbox.mobilenext import DEMO_KEY
    return DEMO_KEY


def _rest_api(source: str, url: str, tmp: str) -> int:
    """What a user would write instead: dlt's rest_api_source with its defaults."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    # dlt's defaults, not the DuckDB settings of sessionsync's .dlt/config.toml
    os.environ["DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"] = "{}"

    cursor_path = "meta.next_cursor" if source == "sessionvision" else "nextCursor"
    resources = []
    for n, (path, params, headers, cursor_param) in enumerate(_endpoints(source)):
        resources.append({
            "name": f"records_{n}", "primary_key": "id", "write_disposition": "merge",
            "table_name": "records",
            "endpoint": {"path": path.lstrip("/"), "params": params, "headers": headers,
                         "data_selector": "data",
                         "paginator": {"type": "cursor", "cursor_path": cursor_path,
                                       "cursor_param": cursor_param}}})
    data = rest_api_source({"client": {"base_url": url,
                                       "auth": {"type": "bearer", "token": _token(source)}},
                            "resources": resources})  # type: ignore[typeddict-item]
    pipeline = dlt.pipeline("bench_rest_api", pipelines_dir=f"{tmp}/rest",
                            destination=dlt.destinations.duckdb(f"{tmp}/rest.duckdb"),
                            dataset_name="bench")
    pipeline.run(data)
    info = pipeline.last_trace.last_normalize_info
    return int(info.row_counts.get("records", 0)) if info else 0


def _floor(source: str, url: str) -> int:
    """Page the endpoint and parse each page; store nothing."""
    rows = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {_token(source)}"},
                      timeout=60) as client:
        for path, params, headers, cursor_param in _endpoints(source):
            cursor = None
            while True:
                query = dict(params, **({cursor_param: cursor} if cursor else {}))
                body = orjson.loads(client.get(path, params=query, headers=headers).content)
                rows += len(body["data"])
                cursor = (body["meta"]["next_cursor"] if source == "sessionvision"
                          else body.get("nextCursor"))
                if not cursor or not body["data"]:
                    break
    return rows


# -- the driver -------------------------------------------------------------------------------
def _stats(url: str, reset: bool = False) -> Dict[str, Any]:
    stats = httpx.get(f"{url}/_sandbox/stats").json()
    if reset:
        httpx.post(f"{url}/_sandbox/reset")
    return stats  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="sessionvision events")
    parser.add_argument("--sessions", type=int, default=200_000, help="Mobile Next sessions")
    parser.add_argument("--rest-api-events", type=int, default=20_000,
                        help="sessionvision events for the rest_api case, which keeps every "
                             "open-ended property as a column and needs ~0.3 GB per 1k rows")
    parser.add_argument("--cases", nargs="*", default=CASES, choices=CASES)
    parser.add_argument("--sources", nargs="*", default=["sessionvision", "mobilenext"],
                        choices=["sessionvision", "mobilenext"])
    args = parser.parse_args()
    me = [sys.executable, "-m", "bench.compare"]
    results: List[Tuple[str, str, Dict[str, Any]]] = []
    plan = [("sessionvision", args.events, [c for c in args.cases if c != "rest_api-duckdb"]),
            ("sessionvision", args.rest_api_events,
             [c for c in args.cases if c == "rest_api-duckdb"]),
            ("mobilenext", args.sessions, args.cases)]
    for source, size, cases in plan:
        if cases and source in args.sources:
            results.extend(_run_cases(me, source, size, cases))
    _print_table(results)


def _run_cases(me: List[str], source: str, size: int,
               cases: List[str]) -> List[Tuple[str, str, Dict[str, Any]]]:
    """Serve one sandbox world of `size` records and run each case against it."""
    results = []
    t0 = time.perf_counter()
    server = subprocess.Popen(me + ["serve", source, str(size)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdin is not None
    line = server.stdout.readline().split()
    assert line and line[0] == "READY", line
    url = line[1]
    print(f"{source}: sandbox of {size} records built in {time.perf_counter() - t0:.0f}s",
          flush=True)
    try:
        for case in cases:
            before = _stats(url, reset=True)
            out = subprocess.run(me + ["case", source, case, url], capture_output=True,
                                 text=True, check=False)
            if out.returncode != 0:
                raise SystemExit(f"{source} {case} failed:\n{out.stderr[-2000:]}")
            measured = json.loads(out.stdout.strip().splitlines()[-1])
            after = _stats(url)
            measured["requests"] = after["requests"]
            measured["server_cpu"] = after["cpu_seconds"] - before["cpu_seconds"]
            results.append((source, case, measured))
            print(f"  {case}: {measured['rows']} rows in {measured['wall']:.1f}s", flush=True)
    finally:
        server.stdin.close()
        server.wait()
    return results


def _print_table(results: List[Tuple[str, str, Dict[str, Any]]]) -> None:
    print()
    print(f"{'source':<14}{'case':<21}{'rows':>10}{'rows/s':>10}{'req/s':>8}{'cpu s':>7}"
          f"{'rss MB':>8}{'sandbox cpu s':>14}")
    rate: Dict[Tuple[str, str], float] = {}
    for source, case, m in results:
        rate[(source, case)] = m["rows"] / m["wall"]
        print(f"{source:<14}{case:<21}{m['rows']:>10}{m['rows'] / m['wall']:>10,.0f}"
              f"{m['requests'] / m['wall']:>8,.0f}{m['cpu']:>7.1f}{m['rss_mb']:>8.0f}"
              f"{m['server_cpu']:>14.1f}")
    print()
    for source in sorted({s for s, _, _ in results}, reverse=True):
        a = rate.get((source, "sessionsync-duckdb"))
        for other in ("rest_api-duckdb", "fetch-floor"):
            if a and rate.get((source, other)):
                print(f"{source}: sessionsync-duckdb / {other} = {a / rate[(source, other)]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "case":
        print(json.dumps(run_case(sys.argv[2], sys.argv[3], sys.argv[4])))
    else:
        main()

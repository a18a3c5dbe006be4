"""`sessionsync report`: one static HTML page with the headline charts of the BI marts.

The page is self-contained: plotly.js is inlined once (no CDN, no fonts or images fetched),
so it renders offline, from a mail attachment or a file share. Charts read the marts that
`sessionsync transform` built (schema `bi`), where BI tools read them: the DuckDB file, or on a
shared warehouse the Postgres database or the Delta tables in the bucket (through DuckDB's
postgres and delta readers, so the charts' SQL is the same everywhere); a mart not built yet
shows as "no data yet".
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import duckdb
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from pipelines import settings, sharing
from pipelines.transform import MARTS, bi_database, marts_location
from pipelines.warehouse import connect, resolve_location
from sources.errors import SyncError

Rows = List[Tuple[Any, ...]]


def write_report(destination: str = "duckdb", warehouse: Optional[str] = None,
                 output: Optional[str] = None) -> Path:
    """Write the report and return its path (default: `report.html` beside the marts' DuckDB
    file; for a shared warehouse, in the current folder or `SESSIONSYNC_HOME`)."""
    location = resolve_location(destination, warehouse)
    database = None if isinstance(location, str) else bi_database(destination, location)
    if database is not None and not database.exists():
        raise SyncError(f"no marts at {database}; run `sessionsync transform` first")
    path = Path(output) if output else (
        database.parent if database else settings.home()) / "report.html"
    with sharing.warehouse_access("report", destination, location, exclusive=False), \
            (duckdb.connect(str(database), read_only=True) if database
             else connect(destination, location)) as con:
        con.execute("SET TimeZone = 'UTC'")
        sections = [(key, title, _figure(con, build)) for key, title, build in CHARTS]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(sections, marts_location(destination, location)), encoding="utf-8")
    return path.absolute()


def _figure(con: duckdb.DuckDBPyConnection,
            build: Callable[[duckdb.DuckDBPyConnection], Optional[go.Figure]]
            ) -> Optional[go.Figure]:
    """The chart, or None when its mart is missing or empty."""
    try:
        fig = build(con)
    except duckdb.CatalogException:  # the mart's source is not synced yet
        return None
    if fig is not None:
        fig.update_layout(template="plotly_white", height=fig.layout.height or 380,
                          margin={"l": 60, "r": 20, "t": 30, "b": 60},
                          legend={"orientation": "h", "y": -0.2})
    return fig


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> Rows:
    return con.execute(sql.replace("{bi}", MARTS)).fetchall()


def _columns(rows: Rows) -> List[List[Any]]:
    return [list(c) for c in zip(*rows, strict=True)] if rows else []


def sales(con: duckdb.DuckDBPyConnection) -> Optional[go.Figure]:
    rows = _rows(con, """
        SELECT coalesce(a.event_name, '') || ' ' || right(s.event_id, 4) AS event,
               sum(s.gross) / 100.0, sum(s.refunds) / 100.0, sum(s.net) / 100.0
        FROM {bi}.event_sales_daily AS s LEFT JOIN {bi}.event_admissions AS a USING (event_id)
        GROUP BY s.event_id, a.event_name ORDER BY 4 DESC LIMIT 15""")
    if not rows:
        return None
    event, gross, refunds, net = _columns(rows)
    return go.Figure([go.Bar(name="gross", x=event, y=gross),
                      go.Bar(name="refunds", x=event, y=refunds),
                      go.Bar(name="net", x=event, y=net)],
                     layout={"barmode": "group", "yaxis": {"title": "amount (major units)"}})


def admissions(con: duckdb.DuckDBPyConnection) -> Optional[go.Figure]:
    rows = _rows(con, """
        SELECT event_name || ' ' || right(event_id, 4), tickets_sold, tickets_admitted,
               coalesce(no_shows, 0)
        FROM {bi}.event_admissions WHERE tickets_sold > 0
        ORDER BY entry_starts_at LIMIT 20""")
    if not rows:
        return None
    event, sold, admitted, no_shows = _columns(rows)
    return go.Figure([go.Bar(name="sold", x=event, y=sold),
                      go.Bar(name="admitted", x=event, y=admitted),
                      go.Bar(name="no-shows (ended events)", x=event, y=no_shows)],
                     layout={"barmode": "group", "yaxis": {"title": "tickets"}})


def verdicts(con: duckdb.DuckDBPyConnection) -> Optional[go.Figure]:
    rows = _rows(con, """
        SELECT day, sum(valid), sum(invalid), sum(pending)
        FROM {bi}.tag_verdicts_daily GROUP BY day ORDER BY day""")
    if not rows:
        return None
    day, valid, invalid, pending = _columns(rows)
    return go.Figure([go.Bar(name="valid", x=day, y=valid, marker_color="#2ca02c"),
                      go.Bar(name="invalid", x=day, y=invalid, marker_color="#d62728"),
                      go.Bar(name="pending", x=day, y=pending, marker_color="#bbbbbb")],
                     layout={"barmode": "stack", "yaxis": {"title": "verifications"}})


def device_minutes(con: duckdb.DuckDBPyConnection) -> Optional[go.Figure]:
    rows = _rows(con, """
        SELECT platform, day, sum(device_minutes) / 60.0
        FROM {bi}.device_minutes_daily GROUP BY ALL ORDER BY platform, day""")
    if not rows:
        return None
    traces = [go.Bar(name=platform, x=[r[1] for r in rows if r[0] == platform],
                     y=[r[2] for r in rows if r[0] == platform])
              for platform in sorted({r[0] for r in rows})]
    return go.Figure(traces, layout={"barmode": "stack", "yaxis": {"title": "device hours"}})


def active_users(con: duckdb.DuckDBPyConnection) -> Optional[go.Figure]:
    rows = _rows(con, """
        SELECT project_id, day, dau, wau, mau FROM {bi}.active_users_daily
        ORDER BY project_id, day""")
    if not rows:
        return None
    traces = []
    for project in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == project]
        for i, metric in enumerate(("DAU", "WAU", "MAU"), start=2):
            traces.append(go.Scatter(name=f"{project} {metric}", mode="lines+markers",
                                     x=[r[1] for r in mine], y=[r[i] for r in mine]))
    return go.Figure(traces, layout={"yaxis": {"title": "users"}})


def retention(con: duckdb.DuckDBPyConnection) -> Optional[go.Figure]:
    rows = _rows(con, """
        SELECT cohort_week, weeks_since, sum(active_users) / sum(cohort_users)
        FROM {bi}.retention_weekly GROUP BY ALL ORDER BY 1, 2""")
    if not rows:
        return None
    weeks = sorted({r[0] for r in rows})
    offsets = sorted({r[1] for r in rows})
    cell: Dict[Tuple[Any, Any], float] = {(r[0], r[1]): r[2] for r in rows}
    z = [[cell.get((w, n)) for n in offsets] for w in weeks]
    return go.Figure(go.Heatmap(z=z, x=[f"week +{n}" for n in offsets],
                                y=[str(w) for w in weeks], colorscale="Blues", zmin=0, zmax=1,
                                texttemplate="%{z:.0%}"),
                     layout={"yaxis": {"title": "cohort (first active week)", "type": "category"}})


def funnel(con: duckdb.DuckDBPyConnection) -> Optional[go.Figure]:
    rows = _rows(con, """
        SELECT project_id, step_name, users FROM {bi}.funnel_conversion
        ORDER BY project_id, step_number""")
    if not rows:
        return None
    return go.Figure([go.Funnel(name=project, y=[r[1] for r in rows if r[0] == project],
                                x=[r[2] for r in rows if r[0] == project],
                                textinfo="value+percent initial")
                      for project in sorted({r[0] for r in rows})])


def freshness(con: duckdb.DuckDBPyConnection) -> Optional[go.Figure]:
    rows = _rows(con, """
        SELECT resource_key, coalesce(hours_since_success, 0), coalesce(lag_hours, 0),
               last_status
        FROM {bi}.resource_freshness WHERE source_name <> 'dbt' ORDER BY resource_key""")
    if not rows:
        return None
    key, since, lag, status = _columns(rows)
    return go.Figure([go.Bar(name="hours since last successful run", y=key, x=since,
                             orientation="h"),
                      go.Bar(name="lag: hours since the newest record", y=key, x=lag,
                             orientation="h", hovertext=status)],
                     layout={"barmode": "group", "height": 120 + 28 * len(key),
                             "xaxis": {"title": "hours", "type": "log"}})


CHARTS: List[Tuple[str, str, Callable[[duckdb.DuckDBPyConnection], Optional[go.Figure]]]] = [
    ("sales", "Sales per event (top 15 by net)", sales),
    ("admissions", "Tickets sold vs admitted", admissions),
    ("verdicts", "NFC verifications per day by verdict", verdicts),
    ("device-minutes", "Device hours per day by platform", device_minutes),
    ("active-users", "Daily, weekly and monthly active users", active_users),
    ("retention", "Weekly retention cohorts", retention),
    ("funnel", "Funnel", funnel),
    ("freshness", "Freshness per resource", freshness),
]

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       background: #f6f7f9; color: #1d2330; }
header { padding: 18px 28px; background: #1d2330; color: #fff; }
header h1 { margin: 0; font-size: 22px; } header p { margin: 4px 0 0; color: #c6cbd6; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr));
       gap: 16px; padding: 16px; }
section { background: #fff; border-radius: 8px; padding: 8px 12px;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); min-width: 0; overflow: hidden; }
section h2 { font-size: 16px; margin: 6px 4px; } .empty { color: #888; padding: 40px; }
"""


def render(sections: List[Tuple[str, str, Optional[go.Figure]]], database: Any) -> str:
    """The whole page: plotly.js inlined once, then one section per chart."""
    parts = []
    for key, title, fig in sections:
        body = ('<p class="empty">no data yet</p>' if fig is None else
                fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{key}",
                            config={"displaylogo": False, "responsive": True}))
        parts.append(f'<section class="chart" id="chart-{key}"><h2>{html.escape(title)}</h2>'
                     f"{body}</section>")
    built = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>sessionsync BI report</title>"
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
        f"<header><h1>sessionsync BI report</h1><p>{html.escape(str(database))} &middot; "
        f"built {built}</p></header><main>{''.join(parts)}</main></body></html>\n"
    )

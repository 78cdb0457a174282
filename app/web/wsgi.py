"""The status page and the JSON API, read from the database (a plain WSGI application).

Routes:
  GET /                          status page: every check, its state and recent runs
  GET /api/checks                checks with their state and uptime (24h, 7d, 30d)
  GET /api/checks/<id>/runs      runs of a check (?since=10m&limit=100)
  GET /api/runs                  recent runs of every check (?since=10m&limit=100)
  GET /metrics                   Prometheus metrics (app/ops/metrics.py)
  GET /healthz                   200 when the database answers
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import func, select, text

from app.definitions.durations import parse_duration
from app.execution.runs import result_fields
from app.ops.report import UPTIME_WINDOWS, uptimes
from app.pipeline.state import location_states
from app.pipeline.state_store import stored_location_states
from app.storage.db import sessions
from app.storage.models import CheckRow, CheckRunRow, CheckStateRow
from config.settings import Settings

# Further back than any retention: beyond it a window is a typo, and beyond datetime's
# range it would not even be a date.
MAX_WINDOW = timedelta(days=3660)
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _columns(names: set[str]) -> tuple[str, ...]:
    """``names`` in the order of check_runs' columns, which the documents follow."""
    return tuple(c.name for c in CheckRunRow.__table__.columns if c.name in names)


# What a listing of runs shows, and what the full view of a run adds: what RunResult says
# of its fields, and the row's own ``final`` (ingest's decision, not the worker's).
RUN_FIELDS = _columns({*result_fields("summary"), "final"})
DETAIL_FIELDS = _columns(set(result_fields("detail")))


def json_response(start: StartResponse, document: Any, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(document, default=str).encode()
    start(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def html_response(start: StartResponse, body: str, status: str = "200 OK") -> list[bytes]:
    data = body.encode()
    start(
        status, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


def run_document(row: CheckRunRow, full: bool = False) -> dict[str, Any]:
    document = {name: getattr(row, name) for name in RUN_FIELDS}
    if full:
        document.update({name: getattr(row, name) for name in DETAIL_FIELDS})
    return document


class StatusApp:
    def __init__(self, settings: Settings, metrics: Callable[[], bytes] | None = None) -> None:
        self.settings = settings
        self.sessions = sessions(settings.database_url)
        self.metrics = metrics

    def _window(self, query: dict[str, list[str]]) -> tuple[datetime, int]:
        """The ``since`` and ``limit`` parameters; ``ValueError`` naming the one at fault."""
        try:
            since = parse_duration(query.get("since", ["1h"])[0])
        except ValueError as exc:
            raise ValueError(f"since: {exc}") from None
        if since > MAX_WINDOW.total_seconds():
            raise ValueError(f"since: at most {MAX_WINDOW.days} days")
        raw_limit = query.get("limit", ["100"])[0]
        if not raw_limit.isdigit() or len(raw_limit) > 6:
            raise ValueError("limit: must be a whole number from 1 to 1000")
        limit = max(1, min(1000, int(raw_limit)))
        return datetime.now(UTC) - timedelta(seconds=since), limit

    def checks(self) -> list[dict[str, Any]]:
        # The state row names the run that last moved the state; the last run is newer
        # whenever the check kept its state since, so it comes from the runs themselves.
        last_run_at = (
            select(func.max(CheckRunRow.started_at))
            .where(CheckRunRow.check_id == CheckRow.id)
            .correlate(CheckRow)
            .scalar_subquery()
        )
        with self.sessions() as session:
            rows = session.execute(
                select(CheckRow, CheckStateRow, last_run_at)
                .outerjoin(CheckStateRow, CheckStateRow.check_id == CheckRow.id)
                .order_by(CheckRow.id)
            ).all()
            by_location = stored_location_states(session)
            uptime = uptimes(session)
        no_runs = dict.fromkeys(UPTIME_WINDOWS)
        return [
            {
                "id": check.id,
                "name": check.name,
                "type": check.kind,
                "frequency_s": check.frequency_s,
                "locations": check.locations,
                "enabled": check.enabled,
                "next_run_at": check.next_run_at,
                "state": state.status if state else "unknown",
                "last_status": state.last_status if state else None,
                "last_run_at": last_run_at,
                "consecutive_failures": state.consecutive_failures if state else 0,
                "location_states": location_states(
                    check.locations, by_location.get(check.id, {}), self.settings.locations
                ),
                # Uptime % over 24h, 7d and 30d from the rollups (see app/ops/report.py);
                # null for a window without runs.
                "uptime": uptime.get(check.id, no_runs),
            }
            for check, state, last_run_at in rows
        ]

    def runs(self, check_id: str | None, since: datetime, limit: int) -> list[dict[str, Any]]:
        query = (
            select(CheckRunRow)
            .where(CheckRunRow.started_at >= since)
            .order_by(CheckRunRow.started_at.desc())
            .limit(limit)
        )
        if check_id is not None:
            query = query.where(CheckRunRow.check_id == check_id)
        with self.sessions() as session:
            return [run_document(r, full=check_id is not None) for r in session.scalars(query)]

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            if path == "/healthz":
                with self.sessions() as session:
                    session.execute(text("SELECT 1"))
                return json_response(start, {"ok": True})
            if path == "/metrics" and self.metrics is not None:
                body = self.metrics()
                start("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])
                return [body]
            if path == "/api/checks":
                return json_response(start, self.checks())
            match = re.fullmatch(r"/api/checks/([a-z0-9_-]+)/runs", path)
            if match or path == "/api/runs":
                since, limit = self._window(query)
                return json_response(
                    start, self.runs(match.group(1) if match else None, since, limit)
                )
            if path == "/":
                return html_response(start, self.page())
        except ValueError as exc:
            return json_response(start, {"error": str(exc)}, "400 Bad Request")
        return json_response(start, {"error": "not found"}, "404 Not Found")

    def page(self) -> str:
        checks = self.checks()
        since = datetime.now(UTC) - timedelta(hours=1)
        recent = self.runs(None, since, 50)
        check_rows = "".join(
            f"<tr><td>{html.escape(c['name'])}</td><td>{c['type']}</td>"
            f"<td style='color:{_colour(c['state'])}'><b>{c['state']}</b></td>"
            f"<td>{_location_cells(c['location_states'])}</td>"
            f"<td>{c['last_run_at'] or '-'}</td></tr>"
            for c in checks
        )
        run_rows = "".join(
            f"<tr><td>{r['started_at']:%H:%M:%S}</td><td>{html.escape(r['check_id'])}</td>"
            f"<td>{html.escape(r['location'])}</td><td>{r['status']}</td>"
            f"<td>{r['duration_ms']:.0f} ms</td><td>{html.escape(r['error'] or '')}</td></tr>"
            for r in recent
        )
        return PAGE.format(check_rows=check_rows, run_rows=run_rows)


COLOURS = {"passing": "#2e7d32", "degraded": "#ed6c02", "failing": "#c62828", "unknown": "#777"}
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>synmon</title>
<meta http-equiv="refresh" content="10">
<style>
body {{font-family: system-ui, sans-serif; margin: 2em}}
td, th {{padding: .2em .8em; text-align: left}}
</style></head><body><h1>synmon</h1>
<h2>Checks</h2>
<table><tr><th>check</th><th>type</th><th>state</th><th>locations</th><th>last run</th></tr>
{check_rows}</table>
<h2>Recent runs</h2>
<table><tr><th>time</th><th>check</th><th>location</th><th>status</th><th>duration</th>
<th>error</th></tr>
{run_rows}</table>
<p>JSON: <a href="/api/checks">/api/checks</a>, <a href="/api/runs">/api/runs</a></p>
</body></html>"""


def _colour(state: str) -> str:
    return COLOURS.get(state, COLOURS["unknown"])


def _location_cells(states: dict[str, str]) -> str:
    """Each location with its state in words, so that colour is never the only signal."""
    return ", ".join(
        f"<span style='color:{_colour(state)}'>{html.escape(location)}: {state}</span>"
        for location, state in states.items()
    )


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(app: Any, address: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``app`` on ``address:port`` in a background thread (port 0: any free port)."""
    server = make_server(address, port, app, server_class=_Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="synmon-web", daemon=True)
    thread.start()
    return server, thread

"""The dashboard's pages (Jinja2, app/web/templates) and the fragments htmx polls.

GET  /                            the checks: filter, search, paging; refreshed live
GET  /checks/<id>                 a check: uptime bars, response-time chart, recent runs
GET  /checks/<id>/chart.json      the chart's data (uPlot's aligned columns)
GET  /runs/<run_id>               a run: assertions or steps, timings, response, screenshots
GET  /runs/<run_id>/artifacts/<n> a run's screenshot
POST /checks/<id>/trigger|pause|resume   (editor, with the form's CSRF token)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from app.ops.report import chart
from app.storage.incidents import IncidentRow
from app.storage.models import CheckRunRow, NotificationRow
from app.web import documents
from app.web.accounts import Principal, pause_check, resume_check
from app.web.auth import allowed
from app.web.documents import BadParameter, CheckFilter, check_documents

if TYPE_CHECKING:
    from app.web.app import Web

CHECK_ID = r"^[A-Za-z0-9_.-]{1,64}$"
LOCATION = r"^[A-Za-z0-9_.-]{1,40}$"
PAGE_SIZE = 50
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
# The most points a chart draws: beyond that a window is thinned to every n-th run.
MAX_POINTS = 5000
HISTORY_DAYS = 90
KINDS = ("http", "browser")


def choice(parameter: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    """A filter of the page's form: empty is "any" (the form sends every field)."""
    if not value:
        return None
    if value not in allowed:
        raise BadParameter(parameter, f"one of {', '.join(allowed)}")
    return value


def uptime_days(session: Any, check_id: str, days: int = HISTORY_DAYS) -> list[dict[str, Any]]:
    """One entry per day (oldest first, today last) with its uptime % and runs, from the
    daily rollups (``report.chart``); None for a day without runs."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    points = {point.day.date(): point for point in chart(session, check_id, days)}
    result = []
    for n in range(days):
        day = (today - timedelta(days=days - 1 - n)).date()
        point = points.get(day)
        result.append(
            {
                "day": day.isoformat(),
                "runs": point.runs if point else 0,
                "failed": point.failed if point else 0,
                "uptime": None
                if point is None or point.uptime_pct is None
                else round(point.uptime_pct, 2),
            }
        )
    return result


def bar_level(uptime: float | None) -> str:
    """A word for a day's bar (its class and its text): colour is never the only signal."""
    if uptime is None:
        return "none"
    if uptime >= 99.9:
        return "up"
    if uptime >= 95:
        return "some"
    return "down"


def query_string(params: dict[str, Any], **changes: Any) -> str:
    merged = {k: v for k, v in {**params, **changes}.items() if v not in (None, "")}
    return urlencode(merged)


def artifact_bytes(web: Web, artifact: dict[str, Any]) -> bytes:
    """A screenshot the run names, from the artifact store the workers wrote it to."""
    from app.execution.artifacts import S3Store, store_for

    key = str(artifact.get("key", ""))
    store = store_for(web.settings)
    if isinstance(store, S3Store):
        # The store's own client, so that its endpoint and credentials are the workers'.
        body = store.client.get_object(Bucket=store.bucket, Key=store._key(key))
        return bytes(body["Body"].read())
    root = urlsplit(web.settings.artifacts_url)
    folder = FilePath(root.netloc + root.path).resolve()
    path = (folder / key).resolve()
    # The key comes from the database, written by a worker: still, nothing outside the
    # artifact folder is ever read.
    if not path.is_relative_to(folder) or not path.is_file():
        raise HTTPException(404, "the screenshot is gone (retention removes old artifacts)")
    return path.read_bytes()


def pages(web: Web) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    viewer = Depends(allowed("viewer", page=True))
    editor = Depends(allowed("editor", page=True))
    api_viewer = Depends(allowed("viewer"))
    render = web.templates.TemplateResponse

    def checks_context(
        state: str | None,
        type: str | None,
        tag: str | None,
        location: str | None,
        q: str | None,
        cursor: str | None,
    ) -> dict[str, Any]:
        where = CheckFilter(state=state, kind=type, tag=tag, location=location, search=q)
        with web.sessions() as session:
            found = check_documents(session, web.settings, where, after=cursor, limit=PAGE_SIZE + 1)
        page = found[:PAGE_SIZE]
        params = {"state": state, "type": type, "tag": tag, "location": location, "q": q}
        next_cursor = page[-1]["id"] if len(found) > PAGE_SIZE and page else None
        return {
            "checks": page,
            "params": params,
            "this_query": query_string(params, cursor=cursor),
            "next_query": query_string(params, cursor=next_cursor) if next_cursor else None,
            "first_query": query_string(params) if cursor else None,
            "states": documents.STATES,
            "locations": web.settings.locations,
        }

    @router.get("/")
    def checks_page(
        request: Request,
        state: str | None = Query(None, max_length=16),
        type: str | None = Query(None, max_length=16),
        tag: str | None = Query(None, max_length=64),
        location: str | None = Query(None, max_length=40),
        q: str | None = Query(None, max_length=100),
        cursor: str | None = Query(None, pattern=CHECK_ID),
        principal: Principal = viewer,
    ) -> Response:
        context = checks_context(
            choice("state", state, documents.STATES),
            choice("type", type, KINDS),
            tag or None,
            location or None,
            q or None,
            cursor,
        )
        return render(request, "checks.html", {"principal": principal, **context})

    @router.get("/partials/checks")
    def checks_partial(
        request: Request,
        state: str | None = Query(None, max_length=16),
        type: str | None = Query(None, max_length=16),
        tag: str | None = Query(None, max_length=64),
        location: str | None = Query(None, max_length=40),
        q: str | None = Query(None, max_length=100),
        cursor: str | None = Query(None, pattern=CHECK_ID),
        principal: Principal = viewer,
    ) -> Response:
        context = checks_context(
            choice("state", state, documents.STATES),
            choice("type", type, KINDS),
            tag or None,
            location or None,
            q or None,
            cursor,
        )
        return render(request, "_checks_table.html", {"principal": principal, **context})

    def check_or_404(check_id: str) -> dict[str, Any]:
        with web.sessions() as session:
            found = check_documents(session, web.settings, ids=[check_id])
        if not found:
            raise HTTPException(404, f"no check {check_id!r}")
        return found[0]

    def recent_runs(check_id: str) -> list[CheckRunRow]:
        with web.sessions() as session:
            since = datetime.now(UTC) - timedelta(days=30)
            return documents.run_rows(session, check_id, since, 25)

    @router.get("/checks/{check_id}")
    def check_page(
        request: Request,
        check_id: str = Path(pattern=CHECK_ID),
        window: Literal["1h", "24h", "7d"] = Query("24h"),
        principal: Principal = viewer,
    ) -> Response:
        check = check_or_404(check_id)
        with web.sessions() as session:
            days = uptime_days(session, check_id)
            incidents = list(
                session.scalars(
                    select(IncidentRow)
                    .where(IncidentRow.check_id == check_id)
                    .order_by(IncidentRow.opened_at.desc())
                    .limit(10)
                )
            )
            notifications = list(
                session.scalars(
                    select(NotificationRow)
                    .where(NotificationRow.check_id == check_id)
                    .order_by(NotificationRow.id.desc())
                    .limit(10)
                )
            )
        for day in days:
            day["level"] = bar_level(day["uptime"])
        return render(
            request,
            "check.html",
            {
                "principal": principal,
                "check": check,
                "runs": recent_runs(check_id),
                "days": days,
                "incidents": incidents,
                "notifications": notifications,
                "window": window,
                "windows": list(WINDOWS),
            },
        )

    @router.get("/partials/checks/{check_id}/runs")
    def runs_partial(
        request: Request, check_id: str = Path(pattern=CHECK_ID), principal: Principal = viewer
    ) -> Response:
        return render(
            request,
            "_runs_table.html",
            {"principal": principal, "runs": recent_runs(check_id), "check": {"id": check_id}},
        )

    @router.get("/checks/{check_id}/chart.json")
    def chart_data(
        check_id: str = Path(pattern=CHECK_ID),
        window: Literal["1h", "24h", "7d"] = Query("24h"),
        principal: Principal = api_viewer,
    ) -> dict[str, Any]:
        """uPlot's aligned data: the times (s), then one column of ms per location."""
        since = datetime.now(UTC) - WINDOWS[window]
        with web.sessions() as session:
            rows = session.execute(
                select(CheckRunRow.started_at, CheckRunRow.location, CheckRunRow.duration_ms)
                .where(
                    CheckRunRow.check_id == check_id,
                    CheckRunRow.started_at >= since,
                    CheckRunRow.final.is_(True),
                )
                .order_by(CheckRunRow.started_at)
                .limit(MAX_POINTS * 4)
            ).all()
        step = max(1, len(rows) // MAX_POINTS)
        rows = rows[::step]
        locations = sorted({location for _, location, _ in rows})
        column = {location: n for n, location in enumerate(locations)}
        times: list[float] = []
        values: list[list[float | None]] = [[] for _ in locations]
        for started_at, location, duration in rows:
            times.append(round(started_at.timestamp(), 3))
            for n in range(len(locations)):
                values[n].append(round(duration, 1) if n == column[location] else None)
        return {"locations": locations, "data": [times, *values]}

    @router.get("/runs/{run_id}")
    def run_page(request: Request, run_id: uuid.UUID, principal: Principal = viewer) -> Response:
        with web.sessions() as session:
            row = session.scalar(select(CheckRunRow).where(CheckRunRow.run_id == run_id))
            if row is None:
                raise HTTPException(404, f"no run {run_id}")
            run = documents.run_document(row, full=True)
        timings = {
            k: v for k, v in (run.get("timings") or {}).items() if isinstance(v, int | float)
        }
        longest = max([*timings.values(), 1.0])
        return render(
            request,
            "run.html",
            {
                "principal": principal,
                "run": run,
                "timings": timings,
                "longest": longest,
                "screenshots": [
                    (n, a)
                    for n, a in enumerate(run.get("artifacts") or [])
                    if str(a.get("content_type", "")).startswith("image/")
                ],
            },
        )

    @router.get("/runs/{run_id}/artifacts/{index}")
    def artifact(
        run_id: uuid.UUID,
        index: int = Path(ge=0, le=1000),
        principal: Principal = viewer,
    ) -> Response:
        with web.sessions() as session:
            row = session.scalar(select(CheckRunRow).where(CheckRunRow.run_id == run_id))
            artifacts = list(row.artifacts or []) if row is not None else []
        if index >= len(artifacts):
            raise HTTPException(404, "no such artifact")
        found = artifacts[index]
        content_type = str(found.get("content_type", ""))
        if content_type not in ("image/png", "image/jpeg"):
            raise HTTPException(404, "no such artifact")
        return Response(artifact_bytes(web, found), media_type=content_type)

    def back_to(check_id: str) -> Response:
        return RedirectResponse(f"/checks/{check_id}", status_code=303)

    @router.post("/checks/{check_id}/trigger")
    def trigger(check_id: str = Path(pattern=CHECK_ID), principal: Principal = editor) -> Response:
        from app.api import UnknownCheck
        from app.api import trigger as run_now

        try:
            run_now(check_id, None, web.settings)
        except UnknownCheck as exc:
            raise HTTPException(404, str(exc)) from None
        return back_to(check_id)

    @router.post("/checks/{check_id}/pause")
    def pause(check_id: str = Path(pattern=CHECK_ID), principal: Principal = editor) -> Response:
        try:
            with web.sessions.begin() as session:
                pause_check(session, check_id, principal.name)
        except LookupError:
            raise HTTPException(404, f"no check {check_id!r}") from None
        return back_to(check_id)

    @router.post("/checks/{check_id}/resume")
    def resume(check_id: str = Path(pattern=CHECK_ID), principal: Principal = editor) -> Response:
        try:
            with web.sessions.begin() as session:
                resume_check(session, check_id)
        except LookupError:
            raise HTTPException(404, f"no check {check_id!r}") from None
        return back_to(check_id)

    return router

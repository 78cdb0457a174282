"""The REST API v1, under /api/v1 (its OpenAPI document at /api/v1/openapi.json).

Checks stay defined as code: the API reads them and operates on them (trigger a run,
pause, resume), it never edits a definition. Every parameter is bounded; a bad one is a
400 whose ``error`` starts with the parameter's name.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.storage.accounts import UserRow
from app.storage.models import CheckRow, CheckRunRow
from app.web import documents
from app.web.accounts import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    AccountError,
    Principal,
    add_user,
    create_token,
    list_tokens,
    list_users,
    pause_check,
    remove_user,
    resume_check,
    revoke_token,
)
from app.web.auth import allowed
from app.web.documents import BadParameter, CheckFilter, check_documents

if TYPE_CHECKING:
    from app.web.app import Web

CHECK_ID = r"^[A-Za-z0-9_.-]{1,64}$"
LOCATION = r"^[A-Za-z0-9_.-]{1,40}$"
CURSOR = r"^\d{1,20}\.\d{1,20}$"
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
State = Literal["passing", "degraded", "failing", "unknown"]
RunStatus = Literal["passed", "degraded", "failed"]


class ErrorDoc(BaseModel):
    error: str


class CheckDoc(BaseModel):
    id: str
    name: str
    type: str
    frequency_s: float
    locations: list[str]
    tags: list[str]
    enabled: bool
    paused: bool
    next_run_at: datetime | None
    state: str
    last_status: str | None
    last_run_at: datetime | None
    consecutive_failures: int
    location_states: dict[str, str]
    uptime: dict[str, float | None]
    p95_ms_24h: float | None


class CheckPage(BaseModel):
    checks: list[CheckDoc]
    # Pass as ``cursor`` for the next page; null on the last.
    next_cursor: str | None


class RunDoc(BaseModel):
    model_config = {"extra": "allow"}
    run_id: uuid.UUID
    check_id: str
    location: str
    status: str
    started_at: datetime
    duration_ms: float


class RunPage(BaseModel):
    runs: list[RunDoc]
    next_cursor: str | None


class Triggered(BaseModel):
    run_ids: list[uuid.UUID]


class Paused(BaseModel):
    id: str
    paused: bool
    changed: bool


class UserDoc(BaseModel):
    model_config = {"from_attributes": True}
    name: str
    role: str
    created_at: datetime
    locked_until: datetime | None


class NewUser(BaseModel):
    name: str = Field(pattern=NAME)
    role: Literal["viewer", "editor", "admin"]
    password: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)


class NewToken(BaseModel):
    name: str = Field(pattern=NAME)
    role: Literal["viewer", "editor", "admin"]


class NewTokenDoc(BaseModel):
    name: str
    role: str
    token: str


class TokenDoc(BaseModel):
    model_config = {"from_attributes": True}
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorDoc, "description": "a parameter out of bounds, named in `error`"},
    401: {"model": ErrorDoc, "description": "not signed in"},
    403: {"model": ErrorDoc, "description": "the role does not allow it"},
}
WITH_404: dict[int | str, dict[str, Any]] = {**ERRORS, 404: {"model": ErrorDoc}}


def run_cursor(row: CheckRunRow) -> str:
    started = row.started_at.astimezone(UTC)
    micros = int(started.timestamp()) * 1_000_000 + started.microsecond
    return f"{micros}.{row.id}"


def parse_run_cursor(cursor: str) -> tuple[datetime, int]:
    micros, row_id = (int(part) for part in cursor.split("."))
    try:
        moment = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
            microsecond=micros % 1_000_000
        )
    except (OverflowError, OSError, ValueError):
        raise BadParameter("cursor", "not a cursor this API gave") from None
    return moment, row_id


def api_v1(web: Web) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERRORS)
    viewer = Depends(allowed("viewer"))
    editor = Depends(allowed("editor"))
    admin = Depends(allowed("admin"))

    @router.get("/checks", response_model=CheckPage, tags=["checks"])
    def list_checks(
        state: Annotated[
            State | None, Query(description="passing, degraded, failing, unknown")
        ] = None,
        type: Literal["http", "browser"] | None = Query(None),
        tag: str | None = Query(None, min_length=1, max_length=64),
        location: str | None = Query(None, pattern=LOCATION),
        q: str | None = Query(None, min_length=1, max_length=100, description="in id or name"),
        cursor: str | None = Query(None, pattern=CHECK_ID, description="next_cursor of a page"),
        limit: int = Query(100, ge=1, le=500),
        principal: Principal = viewer,
    ) -> dict[str, Any]:
        where = CheckFilter(state=state, kind=type, tag=tag, location=location, search=q)
        with web.sessions() as session:
            found = check_documents(session, web.settings, where, after=cursor, limit=limit + 1)
        more = len(found) > limit
        page = found[:limit]
        return {"checks": page, "next_cursor": page[-1]["id"] if more and page else None}

    def one_check(check_id: str) -> dict[str, Any]:
        with web.sessions() as session:
            found = check_documents(session, web.settings, ids=[check_id])
        if not found:
            raise HTTPException(404, f"no check {check_id!r}")
        return found[0]

    @router.get("/checks/{check_id}", response_model=CheckDoc, responses=WITH_404, tags=["checks"])
    def get_check(
        check_id: str = Path(pattern=CHECK_ID), principal: Principal = viewer
    ) -> dict[str, Any]:
        return one_check(check_id)

    @router.get(
        "/checks/{check_id}/runs", response_model=RunPage, responses=WITH_404, tags=["runs"]
    )
    def check_runs(
        check_id: str = Path(pattern=CHECK_ID),
        since: str = Query("24h", max_length=32, description="a duration: 10m, 24h, 7d"),
        status: Annotated[RunStatus | None, Query()] = None,
        location: str | None = Query(None, pattern=LOCATION),
        cursor: str | None = Query(None, pattern=CURSOR),
        limit: int = Query(100, ge=1, le=1000),
        principal: Principal = viewer,
    ) -> dict[str, Any]:
        with web.sessions() as session:
            if session.get(CheckRow, check_id) is None:
                raise HTTPException(404, f"no check {check_id!r}")
        return run_page(check_id, since, status, location, cursor, limit)

    @router.get("/runs", response_model=RunPage, tags=["runs"])
    def all_runs(
        since: str = Query("1h", max_length=32, description="a duration: 10m, 24h, 7d"),
        status: Annotated[RunStatus | None, Query()] = None,
        location: str | None = Query(None, pattern=LOCATION),
        cursor: str | None = Query(None, pattern=CURSOR),
        limit: int = Query(100, ge=1, le=1000),
        principal: Principal = viewer,
    ) -> dict[str, Any]:
        return run_page(None, since, status, location, cursor, limit)

    def run_page(
        check_id: str | None,
        since: str,
        status: str | None,
        location: str | None,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        start = documents.parse_since(since)
        before = parse_run_cursor(cursor) if cursor else None
        with web.sessions() as session:
            rows = documents.run_rows(session, check_id, start, limit + 1, before, status, location)
            page = rows[:limit]
            return {
                "runs": [documents.run_document(row) for row in page],
                "next_cursor": run_cursor(page[-1]) if len(rows) > limit else None,
            }

    @router.get("/runs/{run_id}", responses=WITH_404, tags=["runs"])
    def get_run(run_id: uuid.UUID, principal: Principal = viewer) -> dict[str, Any]:
        """One run with its detail: assertions, timings, response, artifacts."""
        with web.sessions() as session:
            row = session.scalar(select(CheckRunRow).where(CheckRunRow.run_id == run_id))
            if row is None:
                raise HTTPException(404, f"no run {run_id}")
            return documents.run_document(row, full=True)

    @router.post(
        "/checks/{check_id}/trigger",
        response_model=Triggered,
        status_code=202,
        responses=WITH_404,
        tags=["operations"],
    )
    def trigger(
        check_id: str = Path(pattern=CHECK_ID),
        location: str | None = Query(None, pattern=LOCATION),
        principal: Principal = editor,
    ) -> dict[str, Any]:
        """Run the check now (as ``synmon run``), in one location or all of its own."""
        from app.api import UnknownCheck
        from app.api import trigger as run_now

        try:
            return {"run_ids": run_now(check_id, location, web.settings)}
        except UnknownCheck as exc:
            raise HTTPException(404, str(exc)) from None

    def set_paused(check_id: str, paused: bool, principal: Principal) -> dict[str, Any]:
        try:
            with web.sessions.begin() as session:
                changed = (
                    pause_check(session, check_id, principal.name)
                    if paused
                    else resume_check(session, check_id)
                )
        except LookupError:
            raise HTTPException(404, f"no check {check_id!r}") from None
        return {"id": check_id, "paused": paused, "changed": changed}

    @router.post(
        "/checks/{check_id}/pause", response_model=Paused, responses=WITH_404, tags=["operations"]
    )
    def pause(
        check_id: str = Path(pattern=CHECK_ID), principal: Principal = editor
    ) -> dict[str, Any]:
        """Stop scheduling the check (an operational flag; `synmon sync` leaves it)."""
        return set_paused(check_id, True, principal)

    @router.post(
        "/checks/{check_id}/resume", response_model=Paused, responses=WITH_404, tags=["operations"]
    )
    def resume(
        check_id: str = Path(pattern=CHECK_ID), principal: Principal = editor
    ) -> dict[str, Any]:
        return set_paused(check_id, False, principal)

    @router.get("/reports", tags=["reports"])
    def reports(
        since: str = Query("7d", max_length=32, description="a duration: 24h, 7d, 30d"),
        by: Literal["check", "location"] = Query("check"),
        check_id: Annotated[str | None, Query(pattern=CHECK_ID)] = None,
        principal: Principal = viewer,
    ) -> dict[str, Any]:
        """Runs, uptime and p50/p95/p99 per check or location (as ``synmon report``)."""
        from app.ops.report import report

        window = datetime.now(UTC) - documents.parse_since(since, parameter="since")
        with web.sessions() as session:
            return report(session, window, by, check_id).as_dict()

    @router.get("/users", response_model=list[UserDoc], tags=["accounts"])
    def users(principal: Principal = admin) -> list[Any]:
        with web.sessions() as session:
            return list_users(session)

    @router.post("/users", response_model=UserDoc, status_code=201, tags=["accounts"])
    def add(body: NewUser, principal: Principal = admin) -> Any:
        try:
            with web.sessions.begin() as session:
                user = add_user(session, body.name, body.password, body.role)
                return UserDoc.model_validate(user)
        except AccountError as exc:
            raise HTTPException(409 if "exists" in str(exc) else 400, str(exc)) from None

    @router.delete("/users/{name}", status_code=204, responses=WITH_404, tags=["accounts"])
    def remove(name: str = Path(pattern=NAME), principal: Principal = admin) -> Response:
        with web.sessions.begin() as session:
            # The admins' rows locked: two admins removing each other at once would each
            # see the other still there and leave none.
            locked = select(UserRow.name).where(UserRow.role == "admin").with_for_update()
            admins = list(session.scalars(locked))
            if admins == [name]:
                # Over the API only: the CLI, run where the database is, can start again.
                raise HTTPException(409, "the last admin stays: add another admin first")
            try:
                remove_user(session, name)
            except AccountError as exc:
                raise HTTPException(404, str(exc)) from None
        return Response(status_code=204)

    @router.get("/tokens", response_model=list[TokenDoc], tags=["accounts"])
    def tokens(principal: Principal = admin) -> list[Any]:
        with web.sessions() as session:
            return list_tokens(session)

    @router.post("/tokens", response_model=NewTokenDoc, status_code=201, tags=["accounts"])
    def create(body: NewToken, principal: Principal = admin) -> dict[str, Any]:
        """A new token, shown in this answer only (stored hashed)."""
        try:
            with web.sessions.begin() as session:
                value = create_token(session, body.name, body.role)
        except AccountError as exc:
            raise HTTPException(409 if "exists" in str(exc) else 400, str(exc)) from None
        return {"name": body.name, "role": body.role, "token": value}

    @router.delete("/tokens/{name}", status_code=204, responses=WITH_404, tags=["accounts"])
    def revoke(name: str = Path(pattern=NAME), principal: Principal = admin) -> Response:
        try:
            with web.sessions.begin() as session:
                revoke_token(session, name)
        except AccountError as exc:
            raise HTTPException(404, str(exc)) from None
        return Response(status_code=204)

    return router

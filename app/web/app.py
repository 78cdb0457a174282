"""The web product: dashboard pages, the REST API v1, the JSON API it replaced, /metrics
and /healthz, as one FastAPI application (served by uvicorn, app/web/server.py).

Routes outside the API and the pages:
  GET  /healthz                 200 when the database answers (no sign-in)
  GET  /metrics                 Prometheus metrics; asks for SYNMON_METRICS_TOKEN if set
  GET  /api/checks              checks with their state and uptime (24h, 7d, 30d)
  GET  /api/checks/<id>/runs    runs of a check (?since=10m&limit=100)
  GET  /api/runs                recent runs of every check (?since=10m&limit=100)
  GET  /login, POST /login, POST /logout
The /api/ routes are those of the first status page, kept for their users; /api/v1/
(app/web/api_v1.py) is the documented API.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.storage.db import sessions
from app.web import documents
from app.web.accounts import Principal, authenticate, end_session, start_session, user_count
from app.web.auth import NO_USER, SESSION_COOKIE, NoUser, SignInNeeded, allowed, bearer
from app.web.documents import BadParameter, check_documents
from config.settings import Settings, get_settings

HERE = Path(__file__).parent
LOGIN_CSRF_COOKIE = "synmon_login_csrf"
SWAGGER_UI = "5.35.0"
VIEWER = Depends(allowed("viewer"))
PAGE_VIEWER = Depends(allowed("viewer", page=True))


class Web:
    """What every route reads: the settings, the database, the templates."""

    def __init__(self, settings: Settings, metrics: Callable[[], bytes] | None) -> None:
        self.settings = settings
        self.sessions: sessionmaker[Session] = sessions(settings.database_url)
        self.metrics = metrics
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.globals["asset"] = asset_url

    def cookie_options(self) -> dict[str, Any]:
        return {
            "httponly": True,
            "samesite": "lax",
            "secure": self.settings.web_secure_cookies,
            "path": "/",
        }


def asset_url(name: str) -> str:
    return f"/static/{name}"


def error_document(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))


def wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/metrics", "/healthz")) or path.endswith(".json")


def install_handlers(app: FastAPI, web: Web) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail) if exc.status_code != 404 else "not found"
        if wants_json(request):
            return error_document(exc.status_code, message, exc.headers)
        return web.templates.TemplateResponse(
            request,
            "error.html",
            {"status": exc.status_code, "message": message, "principal": None},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> Response:
        # "limit: Input should be less than or equal to 500": the parameter first, as
        # the first API's errors were.
        errors = exc.errors()
        parts = []
        for error in errors[:5]:
            location = [
                str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body")
            ]
            parts.append(f"{'.'.join(location) or 'request'}: {error.get('msg', 'invalid')}")
        return JSONResponse({"error": "; ".join(parts)}, status_code=400)

    @app.exception_handler(BadParameter)
    async def bad_parameter(request: Request, exc: BadParameter) -> Response:
        return error_document(400, str(exc))

    @app.exception_handler(SignInNeeded)
    async def sign_in(request: Request, exc: SignInNeeded) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(NoUser)
    async def no_user(request: Request, exc: NoUser) -> Response:
        return web.templates.TemplateResponse(
            request,
            "error.html",
            {"status": 503, "message": NO_USER, "principal": None},
            status_code=503,
        )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (no open redirect)."""
    if not target or len(target) > 2000:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target:
        return "/"
    return target


def core_routes(web: Web) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, bool]:
        with web.sessions() as session:
            session.execute(text("SELECT 1"))
        return {"ok": True}

    @router.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        if web.metrics is None:
            raise HTTPException(404)
        wanted = web.settings.metrics_token
        if wanted is not None:
            offered = bearer(request) or ""
            if not hmac.compare_digest(offered.encode(), wanted.encode()):
                raise HTTPException(401, "/metrics needs its token", {"WWW-Authenticate": "Bearer"})
        return Response(web.metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @router.get("/api/checks", include_in_schema=False)
    def api_checks(principal: Principal = VIEWER) -> list[dict[str, Any]]:
        with web.sessions() as session:
            return check_documents(session, web.settings)

    def runs(check_id: str | None, request: Request) -> list[dict[str, Any]]:
        since = documents.parse_since(request.query_params.get("since"))
        limit = documents.parse_limit(request.query_params.get("limit"), clamp=True)
        with web.sessions() as session:
            return documents.runs(session, check_id, since, limit)

    @router.get("/api/runs", include_in_schema=False)
    def api_runs(request: Request, principal: Principal = VIEWER) -> Any:
        return runs(None, request)

    @router.get("/api/checks/{check_id}/runs", include_in_schema=False)
    def api_check_runs(check_id: str, request: Request, principal: Principal = VIEWER) -> Any:
        if len(check_id) > 64:
            raise BadParameter("check_id", "at most 64 characters")
        return runs(check_id, request)

    @router.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str | None = None) -> Response:
        with web.sessions() as session:
            users = user_count(session)
        return login_form(request, web, safe_next(next), "", users == 0)

    @router.post("/login", include_in_schema=False)
    def login(
        request: Request,
        name: str = Form(max_length=200),
        password: str = Form(max_length=4096),
        csrf_token: str = Form(max_length=256),
        next: str = Form("/", max_length=2000),
    ) -> Response:
        # Before a session there is no per-session token: the sign-in form is protected
        # by a random cookie that the form repeats (a page of another site can send the
        # form but cannot read or set the cookie).
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie.encode(), csrf_token.encode()):
            raise HTTPException(403, "the CSRF token is missing or wrong: reload the page")
        settings = web.settings
        with web.sessions.begin() as session:
            result = authenticate(
                session, name, password, settings.web_login_attempts, settings.web_lockout
            )
            new = (
                start_session(session, result.user, settings.web_session_lifetime)
                if result.user is not None
                else None
            )
        if new is None:
            return login_form(request, web, safe_next(next), result.refused, False, 401)
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            new.cookie,
            max_age=int(settings.web_session_lifetime.total_seconds()),
            **web.cookie_options(),
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    @router.post("/logout", include_in_schema=False)
    def logout(request: Request, principal: Principal = PAGE_VIEWER) -> Response:
        with web.sessions.begin() as session:
            end_session(session, request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return router


def login_form(
    request: Request, web: Web, next_path: str, refused: str, no_user: bool, status: int = 200
) -> Response:
    token = secrets.token_urlsafe(24)
    response = web.templates.TemplateResponse(
        request,
        "login.html",
        {
            "principal": None,
            "csrf_token": token,
            "next": next_path,
            "refused": refused,
            "no_user": NO_USER if no_user else "",
        },
        status_code=status,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, **web.cookie_options())
    return response


def create_app(
    settings: Settings,
    metrics: Callable[[], bytes] | None = None,
    extra: Sequence[APIRouter] = (),
) -> FastAPI:
    """The application for ``settings``; ``metrics`` renders /metrics (404 without);
    ``extra`` routers are served beside it (``synmon up``'s demo target)."""
    from app.web.api_v1 import api_v1
    from app.web.pages import pages

    web = Web(settings, metrics)
    app = FastAPI(
        title="synmon",
        version="1",
        # The document and the interactive docs are served below, behind a sign-in like
        # the API they describe (FastAPI's would be open), the docs from the vendored
        # Swagger UI (FastAPI's page would load it from a CDN).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/api/v1/openapi.json", include_in_schema=False)
    def openapi_document(principal: Principal = VIEWER) -> Response:
        return JSONResponse(app.openapi())

    @app.get("/api/v1/docs", include_in_schema=False)
    def docs(principal: Principal = PAGE_VIEWER) -> Response:
        page = get_swagger_ui_html(
            openapi_url="/api/v1/openapi.json",
            title="synmon API v1",
            swagger_js_url=asset_url(f"vendor/swagger-ui-{SWAGGER_UI}-bundle.js"),
            swagger_css_url=asset_url(f"vendor/swagger-ui-{SWAGGER_UI}.css"),
            swagger_favicon_url=asset_url("favicon.svg"),
            # No validator badge: it would send the document to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )
        # Its page starts Swagger UI with an inline script: allowed here, and only here.
        page.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"
        )
        return page

    app.state.web = web
    install_handlers(app, web)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        for name, value in request.query_params.multi_items():
            # Postgres refuses NUL in any text; no parameter has a use for one.
            if "\x00" in name or "\x00" in value:
                return error_document(400, f"{name[:40].strip(chr(0))}: contains a NUL character")
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        # No inline script anywhere (but the API docs, which set their own): app.js holds
        # the page logic. uPlot and htmx set styles from script, which style-src
        # 'unsafe-inline' lets through.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'; form-action 'self'",
        )
        return response

    app.include_router(core_routes(web))
    app.include_router(api_v1(web))
    app.include_router(pages(web))
    for router in extra:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


def app_from_environment() -> FastAPI:
    """uvicorn's factory for ``synmon web`` (each worker process builds its own)."""
    from app.ops.metrics import Metrics

    settings = get_settings()
    return create_app(settings, Metrics(settings).render)

"""The target of the example checks, so that ``synmon up`` shows passing checks offline.

Served under ``/demo/`` beside the web product by ``synmon up`` only: a production
installation has no business showing a sign-in form of a make-believe site. Its forms
are the example browser check's target, not the product's, so they carry no CSRF token.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

DEMO_LOGIN = """<!doctype html><html><head><title>Demo login</title></head><body>
<h1>Sign in</h1><form method="post" action="/demo/dashboard">
<input id="email" name="email"><input id="password" name="password" type="password">
<button type="submit">Sign in</button></form></body></html>"""
DEMO_DASHBOARD = """<!doctype html><html><head><title>Demo dashboard</title></head><body>
<h1>Welcome</h1><ul class="items"><li class="item">one</li><li class="item">two</li></ul>
</body></html>"""


def demo_routes() -> APIRouter:
    router = APIRouter(prefix="/demo", include_in_schema=False)

    @router.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "time": datetime.now(UTC).isoformat()}

    @router.get("/login")
    def login() -> HTMLResponse:
        return HTMLResponse(DEMO_LOGIN)

    @router.api_route("/dashboard", methods=["GET", "POST"])
    def dashboard() -> HTMLResponse:
        return HTMLResponse(DEMO_DASHBOARD)

    return router

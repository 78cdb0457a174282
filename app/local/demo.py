"""The target of the example checks, so that ``synmon up`` shows passing checks offline.

Served under ``/demo/`` beside the status page by ``synmon up`` only: a production
status page has no business showing a sign-in form.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from app.web.wsgi import StartResponse, html_response, json_response

DEMO_LOGIN = """<!doctype html><html><head><title>Demo login</title></head><body>
<h1>Sign in</h1><form method="post" action="/demo/dashboard">
<input id="email" name="email"><input id="password" name="password" type="password">
<button type="submit">Sign in</button></form></body></html>"""
DEMO_DASHBOARD = """<!doctype html><html><head><title>Demo dashboard</title></head><body>
<h1>Welcome</h1><ul class="items"><li class="item">one</li><li class="item">two</li></ul>
</body></html>"""


def demo(path: str, environ: dict[str, Any], start: StartResponse) -> list[bytes]:
    if path == "/demo/health":
        return json_response(start, {"status": "ok", "time": datetime.now(UTC).isoformat()})
    if path == "/demo/login":
        return html_response(start, DEMO_LOGIN)
    if path == "/demo/dashboard":
        if environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            environ["wsgi.input"].read(length)
        return html_response(start, DEMO_DASHBOARD)
    return json_response(start, {"error": "not found"}, "404 Not Found")


class WithDemo:
    """``app`` (a WSGI application) with the demo target under ``/demo/``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path.startswith("/demo/"):
            return demo(path, environ, start)
        result: Iterable[bytes] = self.app(environ, start)
        return result

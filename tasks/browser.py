"""The browser check task: ``synmon.run_browser(run_request)``."""

from __future__ import annotations

from typing import Any

from app.celery import app
from app.runner import execute
from app.worker import receive_count
from config.settings import get_settings


@app.task(name="synmon.run_browser", bind=True)
def run_browser(self: Any, request: dict[str, Any]) -> str:
    from app.browser.pool import run_browser_check

    settings = get_settings()
    result = execute(
        request,
        "browser",
        receive_count(self.request),
        settings,
        lambda check, run, deliveries: run_browser_check(check, run, settings, deliveries),
    )
    return result.status

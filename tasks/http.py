"""The HTTP check task: ``synmon.run_http(run_request)``."""

from __future__ import annotations

from typing import Any

from app.celery import app
from app.celery.worker import backoff_redelivery, receive_count
from app.execution.guard import guard_for
from app.execution.http.check import run_http_check
from app.pipeline.runner import execute
from config.settings import get_settings


@app.task(name="synmon.run_http", bind=True)
def run_http(self: Any, request: dict[str, Any]) -> str:
    settings = get_settings()
    guard = guard_for(settings)
    result = execute(
        request,
        "http",
        receive_count(self.request),
        settings,
        lambda check, run, deliveries: run_http_check(check, run, settings, guard, deliveries),
        on_job_failure=lambda: backoff_redelivery(self.request, settings),
    )
    return result.status

"""The browser check task: ``synmon.run_browser(run_request)``."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_init, worker_process_shutdown, worker_shutdown

from app.celery import app
from app.celery.worker import backoff_redelivery, receive_count
from app.pipeline.runner import execute
from config.settings import get_settings


@app.task(name="synmon.run_browser", bind=True)
def run_browser(self: Any, request: dict[str, Any]) -> str:
    from app.execution.browser.pool import run_browser_check

    settings = get_settings()
    result = execute(
        request,
        "browser",
        receive_count(self.request),
        settings,
        lambda check, run, deliveries: run_browser_check(check, run, settings, deliveries),
        on_job_failure=lambda: backoff_redelivery(self.request, settings),
    )
    return result.status


@worker_shutdown.connect
@worker_process_shutdown.connect
def close_browser(**_: Any) -> None:
    """A worker that exits takes its Chromium with it: the worker itself on the threads
    pool (``synmon worker``), a pool process on prefork (a plain ``celery worker``)."""
    from app.execution.browser.pool import close_host

    close_host()


@worker_init.connect
def sweep_chromium(**_: Any) -> None:
    """Chromium left behind by a worker that died on this machine is killed at start."""
    from app.execution.browser.chromium import sweep_orphans

    sweep_orphans()

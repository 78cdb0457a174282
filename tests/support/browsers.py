"""One BrowserHost (one Chromium, one guard proxy) for the tests of a module, and a check
run on it from its steps alone."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from app.definitions.models import Check
from app.execution.browser.chromium import USER_DATA_PREFIX, chromium_processes
from app.execution.browser.pool import BrowserHost
from app.execution.runs import RunRequest, RunResult
from tests.support.settings import make_settings


@contextmanager
def browser_host(folder: Path, **env: str) -> Iterator[BrowserHost]:
    """A host with ``env`` (``SYNMON_*`` settings), its artifacts in ``folder``, never
    recycling its Chromium mid-module; closed at the end."""
    settings = make_settings(
        SYNMON_DATA_DIR=str(folder), SYNMON_BROWSER_RECYCLE_AFTER="1000", **env
    )
    host = BrowserHost(settings)
    try:
        yield host
    finally:
        host.close()


def own_chromium_processes() -> list[psutil.Process]:
    """The Chromium processes this process started (each names its owner's PID in its
    profile folder), not those of another test run sharing the machine."""
    mark = f"{USER_DATA_PREFIX}{os.getpid()}-"
    own = []
    for process in chromium_processes():
        try:
            if any(mark in arg for arg in process.cmdline()):
                own.append(process)
        except psutil.NoSuchProcess:
            continue
    return own


def run_together(host: BrowserHost, steps: list[list[Any]]) -> list[RunResult]:
    """The results of one check per ``steps`` list, all run on ``host`` at once (a thread
    each, as the worker's threads pool does), in the order given."""
    results: list[RunResult | BaseException | None] = [None] * len(steps)
    start = threading.Barrier(len(steps))

    def one(index: int) -> None:
        start.wait()
        try:
            results[index] = run(host, steps[index])
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            results[index] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(steps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [result for result in results if isinstance(result, RunResult)]


def run(host: BrowserHost, steps: list[Any], **extra: Any) -> RunResult:
    """The result of browser check ``flow`` of ``steps`` (``browser=`` adds to its browser
    section, other ``extra`` to the check) run once in eu-west-1 on ``host``."""
    browser = {"steps": steps, **extra.pop("browser", {})}
    check = Check.model_validate(
        {"id": "flow", "type": "browser", "locations": ["eu-west-1"], "browser": browser, **extra}
    )
    request = RunRequest(uuid.uuid4(), check.snapshot(), "eu-west-1", datetime.now(UTC))
    return host.run(check, request, 1)


def steps_passed(result: RunResult) -> list[Any]:
    """Whether each step of ``result`` passed, in order."""
    return [o["passed"] for o in result.assertions]

"""One BrowserHost (one Chromium, one guard proxy) for the tests of a module, and a check
run on it from its steps alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.definitions.models import Check
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

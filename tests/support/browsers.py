"""One BrowserHost (one Chromium, one guard proxy) for the tests of a module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.execution.browser.pool import BrowserHost
from tests.conftest import make_settings


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

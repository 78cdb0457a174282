from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import reset_settings
from tests.support.databases import database
from tests.support.no_processes import (
    GUARD,
    MESSAGE,
    fast_run,
    processes_refused,
)


@pytest.fixture(scope="session", autouse=True)
def _no_processes_in_the_fast_run() -> Iterator[None]:
    """In the fast run, for the whole session (module fixtures too), no process starts."""
    if not fast_run():
        yield
        return
    with processes_refused():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """A test (or its setup) that passed although a process was refused fails all the same:
    the refusal was caught and ignored on the way."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    refused = GUARD.take(item.nodeid)  # taken in every phase, so that none is told twice
    if refused and report.passed and call.when != "teardown":
        report.outcome = "failed"
        report.longrepr = f"{MESSAGE} ({', '.join(refused)}, caught on the way)"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the test's fixtures, so that what they start is told of this test."""
    GUARD.test = item.nodeid


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated database: each test using it runs on SQLite and on Postgres."""
    with database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with database("postgres", tmp_path) as url:
        yield url

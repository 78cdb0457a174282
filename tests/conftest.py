from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import reset_settings
from tests.support.databases import database
from tests.support.settings import make_settings

# Re-exported only for tests/test_timeout_caps.py, which still imports it from here until it
# moves into tests/config/; every other test imports tests.support.settings.
__all__ = ["make_settings"]


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

"""Engines, sessions and migrations for the one database synmon uses."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Several processes (dispatcher, ingest, CLI) share the file in the embedded mode:
    # WAL lets readers run beside the writer, busy_timeout makes writers queue.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    return create_engine(url, **kwargs)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One engine (and connection pool) per database URL per process."""
    return make_engine(url)


def sessions(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema of ``url`` up to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def partition_names(connection: Connection) -> set[str]:
    """The tables that are partitions of another (on Postgres; none on SQLite).

    Comparing the schema with the models leaves them out: a partition is storage of its
    parent (whose columns and indexes Postgres gives it), created and dropped at run
    time by retention, not a table of its own that a migration declares.
    """
    if connection.dialect.name != "postgresql":
        return set()
    query = "SELECT relname FROM pg_class WHERE relispartition AND relkind IN ('r', 'p')"
    return set(connection.exec_driver_sql(query).scalars())


def include_name(connection: Connection) -> Callable[[str | None, str, Any], bool]:
    """An alembic ``include_name`` hook that skips the partitions (``partition_names``).

    They are looked up at the first call only, when a comparison runs: a query at
    configuration time would open a transaction that alembic's own must not find."""
    partitions: list[set[str]] = []

    def include(name: str | None, type_: str, _parent: Any) -> bool:
        if not partitions:
            partitions.append(partition_names(connection))
        return not (type_ == "table" and name in partitions[0])

    return include


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine_for(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()

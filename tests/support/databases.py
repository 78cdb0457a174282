"""Fresh databases for tests: a file for SQLite, a throwaway database on the real Postgres."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
from psycopg2 import sql

from app.storage.db import engine_for, migrate

PG_ADMIN_DSN = os.environ.get(
    "SYNMON_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)


def _admin(dsn: str = PG_ADMIN_DSN) -> psycopg2.extensions.connection:
    connection = psycopg2.connect(dsn, connect_timeout=5)
    connection.autocommit = True
    return connection


def pg_url(name: str, dsn: str = PG_ADMIN_DSN) -> str:
    params = dict(part.split("=", 1) for part in dsn.split())
    return (
        f"postgresql+psycopg2://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
        f"{params.get('port', '5432')}/{name}"
    )


@contextmanager
def postgres_database(migrated: bool = True, dsn: str = PG_ADMIN_DSN) -> Iterator[str]:
    name = f"synmon_test_{uuid.uuid4().hex[:12]}"
    connection = _admin(dsn)
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    connection.close()
    url = pg_url(name, dsn)
    try:
        if migrated:
            migrate(url)
        yield url
    finally:
        engine_for(url).dispose()
        connection = _admin(dsn)
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        connection.close()


@contextmanager
def sqlite_database(folder: Path, migrated: bool = True) -> Iterator[str]:
    url = f"sqlite:///{folder / f'synmon-{uuid.uuid4().hex[:8]}.db'}"
    if migrated:
        migrate(url)
    try:
        yield url
    finally:
        engine_for(url).dispose()


@contextmanager
def database(kind: str, folder: Path, migrated: bool = True) -> Iterator[str]:
    if kind == "postgres":
        with postgres_database(migrated) as url:
            yield url
    else:
        with sqlite_database(folder, migrated) as url:
            yield url

"""Fresh databases for tests: a file for SQLite, a throwaway database on the real Postgres."""

from __future__ import annotations

import atexit
import os
import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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


def _create(dsn: str, template: str | None = None) -> str:
    """A new database, empty or a copy of ``template``; its name."""
    name = f"synmon_test_{uuid.uuid4().hex[:12]}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    connection = _admin(dsn)
    with connection.cursor() as cursor:
        cursor.execute(statement)
    connection.close()
    return name


def _drop(name: str, dsn: str) -> None:
    connection = _admin(dsn)
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    connection.close()


class _SpareDatabases:
    """Databases created ahead, and used ones dropped behind, by a background thread.
    CREATE DATABASE waits about 0.3 s on the server, a migration 0.1 s and DROP DATABASE
    0.1 s; done while a test runs, none is waited for in a test's setup or teardown.

    Migrated databases are copies of a template migrated once, on the caller's thread:
    alembic's ``context`` is global, so migrations never run on this one's."""

    def __init__(self, dsn: str, migrated: bool, ahead: int = 4) -> None:
        self.dsn = dsn
        self.template: str | None = None
        if migrated:
            self.template = _create(dsn)
            url = pg_url(self.template, dsn)
            migrate(url)
            engine_for(url).dispose()  # a template is copied only with no one connected
        self.owner = os.getpid()
        self.ready: queue.Queue[str] = queue.Queue(maxsize=ahead)
        self.used: queue.Queue[str] = queue.Queue()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._fill, name="spare-databases", daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def _fill(self) -> None:
        while not self.closed.is_set():
            try:
                self._drop_used()
                name = _create(self.dsn, self.template)
            except psycopg2.Error:
                return  # take() and give_back() then work on the test's thread, told the error
            while not self.closed.is_set():
                with suppress(queue.Full):
                    self.ready.put(name, timeout=0.2)
                    break
                self._drop_used()
            else:
                self.used.put(name)

    def _drop_used(self) -> None:
        while True:
            try:
                name = self.used.get_nowait()
            except queue.Empty:
                return
            _drop(name, self.dsn)

    def take(self) -> str:
        while True:
            with suppress(queue.Empty):
                return self.ready.get(timeout=0.1)
            if not self.thread.is_alive():
                return _create(self.dsn, self.template)  # the thread failed: told here

    def give_back(self, name: str) -> None:
        """``name`` is no longer used: drop it."""
        if self.thread.is_alive():
            self.used.put(name)
        else:
            _drop(name, self.dsn)

    def close(self) -> None:
        # A forked child inherits the queue but must not drop its parent's databases.
        if os.getpid() != self.owner:
            return
        self.closed.set()
        self.thread.join(10)
        if self.template is not None:
            self.used.put(self.template)
        for left in (self.ready, self.used):
            while True:
                try:
                    name = left.get_nowait()
                except queue.Empty:
                    break
                with suppress(psycopg2.Error):  # at exit: a server gone by then keeps them
                    _drop(name, self.dsn)


_spares: dict[tuple[str, bool], _SpareDatabases] = {}
_spares_lock = threading.Lock()


def _spares_of(dsn: str, migrated: bool) -> _SpareDatabases:
    with _spares_lock:
        spares = _spares.get((dsn, migrated))
        if spares is None or spares.owner != os.getpid():
            spares = _spares[dsn, migrated] = _SpareDatabases(dsn, migrated)
        return spares


@contextmanager
def postgres_database(migrated: bool = True, dsn: str = PG_ADMIN_DSN) -> Iterator[str]:
    """A database of its own on the server at ``dsn``, migrated to the head unless not
    ``migrated``; dropped at the end."""
    spares = _spares_of(dsn, migrated)
    name = spares.take()
    url = pg_url(name, dsn)
    try:
        yield url
    finally:
        engine_for(url).dispose()
        spares.give_back(name)


_sqlite_templates: dict[int, Path] = {}  # by process: a forked child makes its own


def _migrated_sqlite_file() -> Path:
    """A database file migrated once per process, copied for each test instead of migrating
    again (a migration costs about 30 ms)."""
    template = _sqlite_templates.get(os.getpid())
    if template is None:
        folder = Path(tempfile.mkdtemp(prefix="synmon-sqlite-"))
        template = folder / "migrated.db"
        url = f"sqlite:///{template}"
        migrate(url)
        engine_for(url).dispose()
        _sqlite_templates[os.getpid()] = template
        atexit.register(_remove_sqlite_template, os.getpid(), folder)
    return template


def _remove_sqlite_template(owner: int, folder: Path) -> None:
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def sqlite_database(folder: Path, migrated: bool = True) -> Iterator[str]:
    path = folder / f"synmon-{uuid.uuid4().hex[:8]}.db"
    url = f"sqlite:///{path}"
    if migrated:
        shutil.copyfile(_migrated_sqlite_file(), path)
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

"""Writing many rows at once, the fast way each database allows.

On Postgres a batch travels as one JSON document: ``INSERT ... SELECT ... FROM
jsonb_to_recordset(%s)``. One statement and one parameter per batch, serialised by
orjson, is several times faster than SQLAlchemy's multi-row VALUES (whose per-row bind
processing, not the database, was ingest's bottleneck) and close to COPY, while keeping
``ON CONFLICT`` and ``RETURNING``. SQLite, the embedded single-machine store, uses plain
SQLAlchemy statements.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache
from typing import Any

import orjson
from sqlalchemy import ColumnElement, String, Table, any_, bindparam, cast, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import QueryableAttribute, Session


def table_of(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@cache
def _recordset(table: Table, columns: tuple[str, ...]) -> str:
    """``x(col type, ...)`` for jsonb_to_recordset, from the table's own column types."""
    dialect = postgresql.dialect()
    spec = ", ".join(f"{name} {table.c[name].type.compile(dialect=dialect)}" for name in columns)
    return f"x({spec})"


def _payload(rows: Sequence[dict[str, Any]]) -> str:
    return orjson.dumps(list(rows), option=orjson.OPT_NAIVE_UTC).decode()


def insert_ignoring_conflicts(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    conflict: Sequence[str],
    returning: str | None = None,
) -> list[Any]:
    """INSERT rows, skipping those that conflict on ``conflict``; the ``returning`` column
    of the rows actually inserted."""
    if not rows:
        return []
    columns = tuple(rows[0])
    if is_postgres(session):
        names = ", ".join(columns)
        # Identifiers come from the table's metadata; the rows travel as one parameter.
        statement = (
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM "  # noqa: S608
            f"jsonb_to_recordset(CAST(:rows AS jsonb)) AS {_recordset(table, columns)} "
            f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
            + (f" RETURNING {returning}" if returning else "")
        )
        result = session.execute(text(statement), {"rows": _payload(rows)})
        return list(result.scalars()) if returning else []
    insert = sqlite_insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    if returning:
        return list(session.scalars(insert.returning(table.c[returning]), list(rows)))
    session.execute(insert, list(rows))
    return []


def upsert(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str]
) -> None:
    """INSERT rows, or UPDATE every other column of the row with the same ``key``."""
    if not rows:
        return
    columns = tuple(rows[0])
    updates = [name for name in columns if name not in key]
    if is_postgres(session):
        names = ", ".join(columns)
        assignments = ", ".join(f"{name} = EXCLUDED.{name}" for name in updates)
        session.execute(
            text(
                f"INSERT INTO {table.name} ({names}) SELECT {names} FROM "  # noqa: S608
                f"jsonb_to_recordset(CAST(:rows AS jsonb)) AS {_recordset(table, columns)} "
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {assignments}"
            ),
            {"rows": _payload(rows)},
        )
        return
    statement = sqlite_insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(key), set_={name: statement.excluded[name] for name in updates}
    )
    session.execute(statement, list(rows))


def one_of(
    session: Session, column: ColumnElement[Any] | QueryableAttribute[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    """``column IN values``; on Postgres as one array parameter, since building an IN
    list of hundreds of bound values costs more than the query it sends."""
    if not is_postgres(session):
        return column.in_(values)
    texts = bindparam(None, [str(value) for value in values], type_=postgresql.ARRAY(String))
    return column == any_(cast(texts, postgresql.ARRAY(column.type)))


def as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))

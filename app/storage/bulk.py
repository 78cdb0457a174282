"""Writing many rows at once, the fast way each database allows.

On Postgres a batch travels as one JSON document, an array of rows each an array of
values: ``INSERT ... SELECT (r->>0)::uuid, r->1, ... FROM jsonb_array_elements(%s) r``.
One statement and one parameter per batch, serialised by orjson, is several times faster
than SQLAlchemy's multi-row VALUES (whose per-row bind processing, not the database, was
ingest's bottleneck), while keeping ``ON CONFLICT`` and ``RETURNING``. Rows as arrays
rather than objects: Postgres spends most of such a statement parsing the document, and
without a key per value it is about a third shorter. SQLite, the embedded
single-machine store, uses plain SQLAlchemy statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from operator import itemgetter
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
def _values(table: Table, columns: tuple[str, ...]) -> str:
    """The SELECT list that turns each array ``r`` back into typed values."""
    dialect = postgresql.dialect()
    values = []
    for position, name in enumerate(columns):
        # Without its length: an explicit cast to VARCHAR(64) would cut a longer value
        # short in silence, where storing it into the column refuses it.
        column_type = table.c[name].type.compile(dialect=dialect).split("(")[0]
        if column_type in ("JSON", "JSONB"):
            # A JSON null stays SQL NULL, as a column of the document would be.
            values.append(f"NULLIF(r->{position}, 'null'::jsonb)::{column_type} AS {name}")
        else:
            values.append(f"(r->>{position})::{column_type} AS {name}")
    return ", ".join(values)


def _rows_select(table: Table, rows: Sequence[dict[str, Any]]) -> tuple[str, str, dict[str, str]]:
    """(column names, SELECT of the batch, its parameter) for ``rows``."""
    columns = tuple(rows[0])
    values = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
    payload = orjson.dumps([values(row) for row in rows], option=orjson.OPT_NAIVE_UTC)
    if b"\\u0000" in payload:  # rare, so looked for in the document rather than per value
        payload = orjson.dumps(
            [without_nul(values(row)) for row in rows], option=orjson.OPT_NAIVE_UTC
        )
    # Identifiers come from the table's metadata; the rows travel as one parameter.
    select = (
        f"SELECT {_values(table, columns)} FROM "  # noqa: S608
        "jsonb_array_elements(CAST(:rows AS jsonb)) AS r"
    )
    return ", ".join(columns), select, {"rows": payload.decode()}


def without_nul(value: Any) -> Any:
    """``value`` with every NUL character replaced by U+FFFD: Postgres stores NUL neither
    in text nor in jsonb, and a response body may well hold one. Other values as given."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(item) for item in value]
    return value


def insert_ignoring_conflicts(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    conflict: Sequence[str],
    report_skipped: str | None = None,
) -> set[str]:
    """INSERT rows, skipping those that conflict on ``conflict``. With ``report_skipped``
    (a column), that column's values, as text, for the rows skipped."""
    if not rows:
        return set()
    if is_postgres(session):
        names, select, parameters = _rows_select(table, rows)
        insert = f"INSERT INTO {table.name} ({names}) "
        on_conflict = f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
        if report_skipped is None:
            session.execute(text(insert + select + on_conflict), parameters)
            return set()
        # The rows skipped rather than the rows inserted: usually none, where RETURNING
        # would send back, and have parsed, the key of every row of the batch.
        key = report_skipped
        statement = (
            f"WITH batch AS MATERIALIZED ({select}), "  # noqa: S608 - identifiers as above
            f"inserted AS ({insert}SELECT * FROM batch{on_conflict} RETURNING {key}) "
            f"SELECT {key}::text FROM batch WHERE {key} NOT IN (SELECT {key} FROM inserted)"
        )
        return set(session.execute(text(statement), parameters).scalars())
    insert_statement = sqlite_insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    # SQLite would keep a NUL; replaced all the same, so that both stores hold the same.
    plain = [without_nul(row) for row in rows]
    if report_skipped is None:
        session.execute(insert_statement, plain)
        return set()
    column = table.c[report_skipped]
    inserted = set(session.scalars(insert_statement.returning(column), plain))
    return {str(row[report_skipped]) for row in rows if row[report_skipped] not in inserted}


def upsert(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str]
) -> None:
    """INSERT rows, or UPDATE every other column of the row with the same ``key``."""
    if not rows:
        return
    columns = tuple(rows[0])
    updates = [name for name in columns if name not in key]
    if is_postgres(session):
        names, select, parameters = _rows_select(table, rows)
        assignments = ", ".join(f"{name} = EXCLUDED.{name}" for name in updates)
        session.execute(
            text(
                f"INSERT INTO {table.name} ({names}) {select} "
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {assignments}"
            ),
            parameters,
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

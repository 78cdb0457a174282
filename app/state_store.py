"""The check states in the database: locked per check, written only when they move.

Most results do not move their check's state (a passing check passes again), and
writing one state row per result cost as much as storing the result itself. So a state
row is written only when its verdict (status, consecutive failures, alerting) changes,
and ``last_run_id``/``last_run_at`` name the run that last moved it.

Two ingest processes may hold results of the same check at once, in any order. Each
locks the check's state row before deciding, so they take turns per check and each sees
what the other committed. A result moves the state only if no newer final run of its
check is stored already: that newer run may not have moved the state (and so left no
trace in the row), yet it is the newer truth, and the late result must not overrule it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import null, select
from sqlalchemy.orm import Session

from app.state import CheckState
from app.storage.bulk import insert_ignoring_conflicts, is_postgres, one_of, table_of, upsert
from app.storage.models import CheckRunRow, CheckStateRow

STATES = table_of(CheckStateRow)
RUNS = table_of(CheckRunRow)


def lock_states(
    session: Session, check_ids: Collection[str], now: datetime
) -> dict[str, CheckState]:
    """The states of ``check_ids``, created if missing, locked until the transaction ends."""
    ordered = sorted(check_ids)
    if not ordered:
        return {}
    states = _select_states(session, ordered)
    missing = [check_id for check_id in ordered if check_id not in states]
    if missing:
        fresh = [CheckState(check_id).as_row(now) for check_id in missing]
        insert_ignoring_conflicts(session, STATES, fresh, ["check_id"])
        states.update(_select_states(session, missing))
    return states


def _select_states(session: Session, ordered: list[str]) -> dict[str, CheckState]:
    # In CheckState's field order, but for last_run_id: it is only ever written
    # (apply_result sets it on every state it moves), so it is not read back, and parsing
    # one UUID per result was a tenth of this query's cost.
    columns = [
        STATES.c.check_id,
        STATES.c.status,
        null().label("last_run_id"),
        STATES.c.last_status,
        STATES.c.last_run_at,
        STATES.c.consecutive_failures,
        STATES.c.alerting,
    ]
    query = select(*columns).where(one_of(session, STATES.c.check_id, ordered))
    if is_postgres(session):
        # In id order, so that two ingest processes never wait on each other in a cycle.
        # A lock, not a write: locking a row costs a fraction of updating it.
        query = query.order_by(STATES.c.check_id).with_for_update()
    return {row[0]: CheckState(*row) for row in session.execute(query)}


def newest_final_runs(session: Session, check_ids: Collection[str]) -> dict[str, datetime]:
    """When the newest stored final run of each check started."""
    if not check_ids:
        return {}
    newest = (
        select(RUNS.c.started_at)
        .where(RUNS.c.check_id == STATES.c.check_id, RUNS.c.final)
        .order_by(RUNS.c.started_at.desc())
        .limit(1)
        .correlate(STATES)
        .scalar_subquery()
    )
    query = select(STATES.c.check_id, newest).where(
        one_of(session, STATES.c.check_id, sorted(check_ids))
    )
    return {check_id: started for check_id, started in session.execute(query) if started}


def save_states(session: Session, states: Iterable[CheckState], now: datetime) -> None:
    """Write the states that moved, in one statement."""
    upsert(session, STATES, [state.as_row(now) for state in states], ["check_id"])

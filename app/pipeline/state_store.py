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

from app.pipeline.state import CheckState, LocationState
from app.storage.bulk import insert_ignoring_conflicts, is_postgres, one_of, table_of, upsert
from app.storage.models import CheckLocationStateRow, CheckRunRow, CheckStateRow

STATES = table_of(CheckStateRow)
LOCATIONS = table_of(CheckLocationStateRow)
RUNS = table_of(CheckRunRow)
Pair = tuple[str, str]  # (check id, location)


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
    # (derive sets it on every state it moves), so it is not read back, and parsing
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


def location_states(
    session: Session, pairs: Collection[Pair], checks: dict[str, CheckState], now: datetime
) -> dict[Pair, LocationState]:
    """The states of ``pairs``, created (from their check's state) if missing.

    Call with the checks' states locked (``lock_states``): that lock covers them.
    """
    if not pairs:
        return {}
    states = _select_locations(session, {check_id for check_id, _ in pairs})
    missing = sorted(pair for pair in pairs if pair not in states)
    if missing:
        # A check with no location state at all was last judged by the release before,
        # which kept one state for every location: its locations start from that state.
        # A location added later to a check that has some starts afresh.
        reported = {check_id for check_id, _ in states}
        fresh = [
            (
                LocationState(c, location)
                if c in reported
                else LocationState.seeded(checks[c], location)
            ).as_row(now)
            for c, location in missing
        ]
        insert_ignoring_conflicts(session, LOCATIONS, fresh, ["check_id", "location"])
        states.update(_select_locations(session, {check_id for check_id, _ in missing}))
    return states


def _select_locations(session: Session, check_ids: Collection[str]) -> dict[Pair, LocationState]:
    # In LocationState's field order; last_run_id is only ever written, as in _select_states.
    columns = [
        LOCATIONS.c.check_id,
        LOCATIONS.c.location,
        LOCATIONS.c.status,
        null().label("last_run_id"),
        LOCATIONS.c.last_status,
        LOCATIONS.c.last_run_at,
        LOCATIONS.c.consecutive_failures,
    ]
    query = select(*columns).where(one_of(session, LOCATIONS.c.check_id, sorted(check_ids)))
    return {(row[0], row[1]): LocationState(*row) for row in session.execute(query)}


def newest_final_runs(session: Session, pairs: Collection[Pair]) -> dict[Pair, datetime]:
    """When the newest stored final run of each (check, location) started."""
    if not pairs:
        return {}
    newest = (
        select(RUNS.c.started_at)
        .where(
            RUNS.c.check_id == LOCATIONS.c.check_id,
            RUNS.c.location == LOCATIONS.c.location,
            RUNS.c.final,
        )
        .order_by(RUNS.c.started_at.desc())
        .limit(1)
        .correlate(LOCATIONS)
        .scalar_subquery()
    )
    query = select(LOCATIONS.c.check_id, LOCATIONS.c.location, newest).where(
        one_of(session, LOCATIONS.c.check_id, sorted({check_id for check_id, _ in pairs}))
    )
    wanted = set(pairs)
    return {
        (check_id, location): started
        for check_id, location, started in session.execute(query)
        if started and (check_id, location) in wanted
    }


def save_states(
    session: Session,
    states: Iterable[CheckState],
    locations: Iterable[LocationState],
    now: datetime,
) -> None:
    """Write the states that moved, one statement per table."""
    upsert(session, STATES, [state.as_row(now) for state in states], ["check_id"])
    upsert(session, LOCATIONS, [state.as_row(now) for state in locations], ["check_id", "location"])


def stored_location_states(
    session: Session, check_ids: Collection[str] | None = None
) -> dict[str, dict[str, str]]:
    """Each check's stored location states, as location -> status (all checks if None)."""
    query = select(LOCATIONS.c.check_id, LOCATIONS.c.location, LOCATIONS.c.status)
    if check_ids is not None:
        query = query.where(one_of(session, LOCATIONS.c.check_id, sorted(check_ids)))
    by_check: dict[str, dict[str, str]] = {}
    for check_id, location, status in session.execute(query):
        by_check.setdefault(check_id, {})[location] = status
    return by_check

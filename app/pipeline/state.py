"""The check state machine: one state per location, a check verdict derived from them.

Only the final attempt of a run (no retry followed) moves a state, so a check that
fails and then passes on its retry neither alerts nor counts as a failure.

Each location of a check keeps its own status (that of its last final result) and its
own count of consecutive failures: with two locations and one of them down, the one
that passes cannot reset the count of the one that fails. A location is *down* once it
has failed ``alert.after_failures`` times in a row. The check itself is derived:

- it alerts (one failure notification) when at least ``alert.min_failing_locations``
  locations are down, and recovers (one recovery) when fewer remain down;
- its status is ``failing`` when at least that many locations failed their last run,
  ``degraded`` when none failed and one is degraded, ``passing`` otherwise (``unknown``
  before any location has reported).

A round-robin check runs at one location per period; each location still counts its
own runs, so ``after_failures: 2`` over three locations needs two failed runs at the
same location (at most six periods).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from app.definitions.models import AlertPolicy, Check
from app.execution.runs import RunResult

STATE_BY_STATUS = {"passed": "passing", "degraded": "degraded", "failed": "failing"}
DEFAULT_POLICY = AlertPolicy()


class StateRow:
    """What both kinds of state share: a copy to try a result on, and the row to write."""

    def copy(self) -> Self:
        # A shallow copy, as dataclasses.replace makes, without its trip through
        # __init__ (a tenth of ingest's own time).
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def as_row(self, updated_at: datetime) -> dict[str, Any]:
        return {**vars(self), "updated_at": updated_at}


@dataclass
class CheckState(StateRow):
    """One row of ``check_state``: the check's derived verdict."""

    check_id: str
    status: str = "unknown"
    last_run_id: uuid.UUID | None = None
    last_status: str | None = None
    last_run_at: datetime | None = None
    # The longest run of failures among the check's locations.
    consecutive_failures: int = 0
    alerting: bool = False

    @property
    def verdict(self) -> tuple[str, int, bool]:
        """What a result can change that matters: a state is written only when this moves."""
        return (self.status, self.consecutive_failures or 0, self.alerting)


@dataclass
class LocationState(StateRow):
    """One row of ``check_location_state``."""

    check_id: str
    location: str
    status: str = "unknown"
    last_run_id: uuid.UUID | None = None
    last_status: str | None = None
    last_run_at: datetime | None = None
    consecutive_failures: int = 0

    @property
    def verdict(self) -> tuple[str, int]:
        return (self.status, self.consecutive_failures or 0)

    @classmethod
    def seeded(cls, check: CheckState, location: str) -> LocationState:
        """A location's first state: its check's, as the release before kept it (one state
        for every location), so that an alert it opened stays open."""
        return cls(
            check.check_id,
            location,
            status=check.status,
            last_status=check.last_status,
            consecutive_failures=check.consecutive_failures or 0,
        )


@dataclass(frozen=True)
class Event:
    kind: str  # failure | recovery | degraded
    channels: tuple[str, ...]


def apply_to_location(location: LocationState, result: RunResult) -> None:
    """Move one location's state by one of its final results."""
    location.status = STATE_BY_STATUS[result.status]
    location.last_run_id = result.run_id
    location.last_status = result.status
    location.last_run_at = result.started_at
    if result.status == "failed":
        location.consecutive_failures = (location.consecutive_failures or 0) + 1
    else:
        location.consecutive_failures = 0


def derive(
    state: CheckState,
    locations: Mapping[str, LocationState],
    check: Check | None,
    result: RunResult,
) -> list[Event]:
    """Derive the check's verdict from its locations after ``result``; what to notify."""
    policy = check.alert if check is not None else DEFAULT_POLICY
    counted = [
        locations[name]
        for name in (check.locations if check is not None and check.locations else locations)
        if name in locations and locations[name].status != "unknown"
    ]
    failing = [s for s in counted if s.status == "failing"]
    down = [s for s in failing if s.consecutive_failures >= policy.after_failures]
    quorum = policy.min_failing_locations
    previous = state.status
    was_alerting = state.alerting
    if len(failing) >= quorum:
        state.status = "failing"
    elif not failing and any(s.status == "degraded" for s in counted):
        state.status = "degraded"
    else:
        state.status = "passing" if counted else "unknown"
    state.alerting = len(down) >= quorum
    state.consecutive_failures = max((s.consecutive_failures for s in counted), default=0)
    state.last_run_id = result.run_id
    state.last_status = result.status
    state.last_run_at = result.started_at
    if check is None:
        return []
    channels = tuple(policy.channels)
    events: list[Event] = []
    if state.alerting and not was_alerting:
        events.append(Event("failure", channels))
    elif was_alerting and not state.alerting and policy.notify_recovery:
        events.append(Event("recovery", channels))
    if state.status == "degraded" and previous != "degraded" and policy.notify_degraded:
        events.append(Event("degraded", channels))
    return [event for event in events if event.channels]


def location_states(
    check_locations: Sequence[str], stored: Mapping[str, str], default: Sequence[str]
) -> dict[str, str]:
    """Each location of a check with its status (unknown where none has reported)."""
    names = check_locations or default
    return {name: stored.get(name, "unknown") for name in names}

"""The check state machine: passing / degraded / failing, and when to notify.

Only the final attempt of a run (no retry followed) moves the state, so a check that
fails and then passes on its retry neither alerts nor counts as a failure.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from app.checks.models import Check
from app.messages import RunResult

STATE_BY_STATUS = {"passed": "passing", "degraded": "degraded", "failed": "failing"}


@dataclass
class CheckState:
    """One row of ``check_state``, as the state machine sees it."""

    check_id: str
    status: str = "unknown"
    last_run_id: uuid.UUID | None = None
    last_status: str | None = None
    last_run_at: datetime | None = None
    consecutive_failures: int = 0
    alerting: bool = False

    @property
    def verdict(self) -> tuple[str, int, bool]:
        """What a result can change that matters: a state is written only when this moves."""
        return (self.status, self.consecutive_failures or 0, self.alerting)

    def copy(self) -> CheckState:
        return CheckState(**vars(self))

    def as_row(self, updated_at: datetime) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in STATE_FIELDS}
        row["updated_at"] = updated_at
        return row


STATE_FIELDS = tuple(f.name for f in fields(CheckState))


@dataclass(frozen=True)
class Event:
    kind: str  # failure | recovery | degraded
    channels: tuple[str, ...]


def apply_result(state: CheckState, check: Check | None, result: RunResult) -> list[Event]:
    """Move ``state`` by one final result; the notifications it causes."""
    previous = state.status
    state.status = STATE_BY_STATUS[result.status]
    state.last_run_id = result.run_id
    state.last_status = result.status
    state.last_run_at = result.started_at
    if result.status == "failed":
        state.consecutive_failures = (state.consecutive_failures or 0) + 1
    else:
        state.consecutive_failures = 0
    if check is None:
        return []
    alert = check.alert
    channels = tuple(alert.channels)
    events: list[Event] = []
    if result.status == "failed":
        if not state.alerting and state.consecutive_failures >= alert.after_failures:
            state.alerting = True
            events.append(Event("failure", channels))
    else:
        if state.alerting:
            state.alerting = False
            if alert.notify_recovery:
                events.append(Event("recovery", channels))
        if result.status == "degraded" and previous != "degraded" and alert.notify_degraded:
            events.append(Event("degraded", channels))
    return [event for event in events if event.channels]

"""The sender: drains the notification outbox that ingest fills, one notification at a time.

It delivers each notification on its own, through the ``Notifier`` of its channel's type
(``app.alerts.channels``):

1. **claim** it in a short transaction of its own (status ``sending``, ``attempts`` + 1,
   ``next_attempt_at`` = the end of its lease), and commit;
2. read its payload, its channel and its incident, and **deliver** it with no
   transaction open;
3. **record** the outcome in a new short transaction, only if the claim is still its
   own (same ``attempts``): a sender whose lease ran out records nothing.

Whatever goes wrong with one notification (the channel, a bug, a payload without a
field, a database error reading its channel) fails or reschedules that one alone; a
delivery that succeeded is recorded at once, so a later failure cannot undo it. A
notification whose sender crashed mid-delivery is claimed again once its lease has
run out: delivery is at least once when a sender crashes, exactly once otherwise.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.alerts.channels import NOTIFIERS, NotifierError
from app.storage.incidents import IncidentRow
from app.storage.models import ChannelRow, NotificationRow
from config.settings import Settings

log = logging.getLogger("synmon.notify")
MAX_ATTEMPTS = 8
# Long past the longest delivery (``Notifier.timeout``): a lease only runs out when its
# sender stopped or crashed.
LEASE = timedelta(minutes=2)
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Claim:
    """A notification this sender holds until ``lease_until``; ``attempt`` (its
    ``attempts`` after claiming) tells a newer claim from a stale one."""

    id: int
    attempt: int
    lease_until: datetime


@dataclass(frozen=True)
class Outcome:
    status: str  # sent | pending | failed
    error: str | None = None
    retry_at: datetime | None = None


def incident_key(check_id: str, opened_by_run: uuid.UUID | str) -> str:
    """The key channels that deduplicate (PagerDuty's ``dedup_key``, Opsgenie's ``alias``)
    know one incident by: the same for its failure and its recovery, and, being named
    after the run that opened it, never reused by another incident or installation
    (an incident's id restarts with a new database)."""
    return f"synmon:{check_id}:{opened_by_run}"


def incident_of(session: Session, notification: NotificationRow) -> dict[str, Any] | None:
    """The incident ``notification`` tells of, as notifiers get it, or None.

    Ingest opens an incident with the failure notification and closes it with the
    recovery, in one transaction, so each names the other by its run. A degraded event
    has no incident, nor has a recovery of an alert opened by a release that predates
    incidents: those are sent without one.
    """
    if notification.event == "failure":
        by_run = IncidentRow.opened_by_run == notification.run_id
    elif notification.event == "recovery":
        by_run = IncidentRow.closed_by_run == notification.run_id
    else:
        return None
    incident = session.scalars(
        select(IncidentRow)
        .where(IncidentRow.check_id == notification.check_id, by_run)
        .order_by(IncidentRow.id)
        .limit(1)
    ).first()
    if incident is None:
        return None
    return {
        "id": incident.id,
        "key": incident_key(incident.check_id, incident.opened_by_run),
        "opened_at": incident.opened_at.isoformat(),
        "closed_at": incident.closed_at.isoformat() if incident.closed_at else None,
        "locations": list(incident.locations or []),
    }


class NotificationSender:
    """Drains the notification outbox that ingest fills, one notification at a time."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        stop: threading.Event | None = None,
        lease: timedelta = LEASE,
    ) -> None:
        self.settings = settings
        self.sessions = session_factory
        self.stop = stop or threading.Event()
        self.lease = lease

    def send_due(self, limit: int = 50) -> int:
        """Deliver up to ``limit`` due notifications; returns how many this sender claimed."""
        claimed = 0
        for notification_id, attempts in self.due(limit):
            if self.stop.is_set():
                break  # claimed nothing more: what is left stays due for the next sender
            claim = self.claim(notification_id, attempts)
            if claim is None:
                continue  # another sender took it, or it was given up
            claimed += 1
            outcome = self.deliver(claim)
            try:
                self.record(claim, outcome)
            except Exception as exc:  # noqa: BLE001 - the others still go out
                # Not recorded: claimed again when the lease runs out (sent twice at worst).
                log.error("could not record notification %d: %s", claim.id, exc)
        return claimed

    def due(self, limit: int) -> list[tuple[int, int]]:
        """(id, attempts) of due notifications, and of claims whose lease ran out."""
        now = datetime.now(UTC)
        with self.sessions() as session:
            rows = session.execute(
                select(NotificationRow.id, NotificationRow.attempts)
                .where(
                    NotificationRow.status.in_(("pending", "sending")),
                    NotificationRow.next_attempt_at <= now,
                )
                .order_by(NotificationRow.id)
                .limit(limit)
            ).all()
        return [(row.id, row.attempts) for row in rows]

    def claim(self, notification_id: int, attempts: int) -> Claim | None:
        """Take one notification (compare-and-set on ``attempts``), in its own transaction."""
        now = datetime.now(UTC)
        lease_until = now + self.lease
        still_due = (
            NotificationRow.id == notification_id,
            NotificationRow.attempts == attempts,
            NotificationRow.status.in_(("pending", "sending")),
            NotificationRow.next_attempt_at <= now,
        )
        with self.sessions.begin() as session:
            if attempts >= MAX_ATTEMPTS:
                # Only a claim whose sender died gets here: a notification that keeps
                # ending its sender is given up, not delivered forever.
                given_up = session.execute(
                    update(NotificationRow)
                    .where(*still_due)
                    .values(
                        status="failed",
                        last_error=f"delivery interrupted {attempts} times (sender stopped)",
                    )
                )
                if given_up.rowcount == 1:  # type: ignore[attr-defined]
                    log.error("notification %d given up: %d attempts", notification_id, attempts)
                return None
            result = session.execute(
                update(NotificationRow)
                .where(*still_due)
                .values(status="sending", attempts=attempts + 1, next_attempt_at=lease_until)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
        return Claim(notification_id, attempts + 1, lease_until)

    def deliver(self, claim: Claim) -> Outcome:
        """Send one claimed notification; any error becomes this notification's outcome."""
        now = datetime.now(UTC)
        channel_id: object = "?"
        try:
            with self.sessions() as session:  # closed (no transaction) before sending
                row = session.get(NotificationRow, claim.id)
                if row is None:
                    return Outcome("failed", "the notification no longer exists")
                channel_id, check_id, event, payload = (
                    row.channel_id,
                    row.check_id,
                    row.event,
                    row.payload,
                )
                channel = session.get(ChannelRow, row.channel_id)
                kind, config = (channel.type, channel.config) if channel else (None, None)
                incident = incident_of(session, row)
            if kind is None or config is None:
                return Outcome("failed", f"channel {channel_id!r} no longer exists")
            notifier_class = NOTIFIERS.get(kind)
            if notifier_class is None:
                return Outcome("failed", f"channel {channel_id!r} has unknown type {kind!r}")
            if not isinstance(payload, dict) or not isinstance(config, dict):
                raise TypeError("payload and channel configuration must be JSON objects")
            notifier = notifier_class(config, self.settings)
            notifier.send(notifier.prepare({**payload, "incident": incident}))
        except NotifierError as exc:
            permanent = exc.permanent
            error = str(exc)
        except Exception as exc:  # one notification's bug is its own, not the batch's
            log.error(
                "notification %d to %s raised %s",
                claim.id,
                channel_id,
                type(exc).__name__,
                exc_info=True,
            )
            permanent, error = False, f"{type(exc).__name__}: {exc}"
        else:
            log.info("sent %s notification for %s to %s", event, check_id, channel_id)
            return Outcome("sent")
        error = f"channel {channel_id}: {error}"[:MAX_ERROR_CHARS]
        if permanent or claim.attempt >= MAX_ATTEMPTS:
            log.error("notification %d failed for good: %s", claim.id, error)
            return Outcome("failed", error)
        retry_at = now + timedelta(seconds=min(600, 5 * 2**claim.attempt))
        log.warning("notification %d will be tried again at %s: %s", claim.id, retry_at, error)
        return Outcome("pending", error, retry_at)

    def record(self, claim: Claim, outcome: Outcome) -> bool:
        """Write the outcome in a transaction of its own, if the claim is still ours."""
        values: dict[str, Any] = {"status": outcome.status}
        if outcome.status == "sent":
            values["sent_at"] = datetime.now(UTC)
        else:
            values["last_error"] = outcome.error
        if outcome.retry_at is not None:
            values["next_attempt_at"] = outcome.retry_at
        with self.sessions.begin() as session:
            result = session.execute(
                update(NotificationRow)
                .where(
                    NotificationRow.id == claim.id,
                    NotificationRow.status == "sending",
                    NotificationRow.attempts == claim.attempt,
                )
                .values(**values)
            )
            mine = bool(result.rowcount == 1)  # type: ignore[attr-defined]
        if not mine:
            log.warning("notification %d was claimed again meanwhile: outcome dropped", claim.id)
        return mine

    def run_forever(self, interval: float = 1.0) -> None:
        while not self.stop.is_set():
            try:
                self.send_due()
            except Exception as exc:  # noqa: BLE001 - a database outage must not end the loop
                log.warning("notification cycle failed: %s", exc)
            self.stop.wait(interval)

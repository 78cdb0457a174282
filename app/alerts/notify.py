"""Notifications: one small class per channel type, and the sender that drains the outbox.

Each transport has one method, ``send(payload)``, and raises ``TransportError`` saying
whether trying again could help. The sender delivers each notification on its own:

1. **claim** it in a short transaction of its own (status ``sending``, ``attempts`` + 1,
   ``next_attempt_at`` = the end of its lease), and commit;
2. read its payload and channel, and **deliver** it with no transaction open;
3. **record** the outcome in a new short transaction, only if the claim is still its
   own (same ``attempts``): a sender whose lease ran out records nothing.

Whatever goes wrong with one notification (the transport, a bug, a payload without a
field, a database error reading its channel) fails or reschedules that one alone; a
delivery that succeeded is recorded at once, so a later failure cannot undo it. A
notification whose sender crashed mid-delivery is claimed again once its lease has
run out: delivery is at least once when a sender crashes, exactly once otherwise.
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from time import perf_counter
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.execution.guard import ForbiddenTarget, TargetGuard
from app.execution.http.transport import GuardedAdapter, Probe, current_probe, watchdog
from app.storage.models import ChannelRow, NotificationRow
from config.settings import Settings

log = logging.getLogger("synmon.notify")
MAX_ATTEMPTS = 8
# Bounds a whole delivery (connect, send, answer), not only each read.
TIMEOUT = 10
# Long past the longest delivery (``TIMEOUT``): a lease only runs out when its sender
# stopped or crashed.
LEASE = timedelta(minutes=2)
MAX_ERROR_CHARS = 500
MAX_SUBJECT_CHARS = 200
# C0 and C1 controls and Unicode line and paragraph separators.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class TransportError(Exception):
    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def describe(payload: dict[str, Any]) -> str:
    event = payload["event"]
    name = payload.get("check_name") or payload["check_id"]
    where = payload.get("location", "?")
    if event == "failure":
        return f"🔴 {name} is failing in {where}: {payload.get('error') or 'failed'}"
    if event == "recovery":
        return f"🟢 {name} recovered in {where}"
    return f"🟡 {name} is degraded in {where} ({payload.get('duration_ms', 0):.0f} ms)"


def header_line(text: str, limit: int) -> str:
    """``text`` as one header line: check names and errors may hold CR/LF (an injected
    ``Bcc:``), so every control character becomes a space."""
    flat = " ".join(CONTROL_CHARACTERS.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def slack_escape(text: str) -> str:
    """Slack's mrkdwn reads ``<...>`` as links and mentions (``<!channel>``); its docs
    ask for exactly these three characters to be escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Transport:
    kind: ClassVar[str]

    def __init__(self, config: dict[str, Any], settings: Settings) -> None:
        self.config = config
        self.settings = settings

    def send(self, payload: dict[str, Any]) -> None:
        raise NotImplementedError


class _HttpTransport(Transport):
    def post(self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        guard = TargetGuard(self.settings.allow_private_targets, self.settings.allowed_targets)
        probe = Probe(guard=guard, deadline=perf_counter() + TIMEOUT)
        token = current_probe.set(probe)
        # Socket timeouts bound each read: the watchdog bounds the whole exchange, so an
        # endpoint answering a byte at a time cannot hold the sender.
        alarm = watchdog.arm(probe.deadline or 0.0, probe.abort)
        session = requests.Session()
        session.trust_env = False
        session.mount("http://", GuardedAdapter(max_retries=0))
        session.mount("https://", GuardedAdapter(max_retries=0))
        try:
            response = session.post(
                url, json=body, headers=headers or {}, timeout=TIMEOUT, allow_redirects=False
            )
        except ForbiddenTarget as exc:
            raise TransportError(str(exc), permanent=True) from None
        except (requests.RequestException, OSError) as exc:
            if probe.expired:
                raise TransportError(
                    f"{urlsplit(url).hostname}: no answer within {TIMEOUT}s"
                ) from None
            raise TransportError(f"{urlsplit(url).hostname}: {exc}") from None
        finally:
            watchdog.disarm(alarm)
            session.close()
            current_probe.reset(token)
        if response.status_code >= 500 or response.status_code == 429:
            raise TransportError(f"{urlsplit(url).hostname} answered {response.status_code}")
        if response.status_code >= 400:
            raise TransportError(
                f"{urlsplit(url).hostname} refused the notification ({response.status_code})",
                permanent=True,
            )


class Webhook(_HttpTransport):
    kind = "webhook"

    def send(self, payload: dict[str, Any]) -> None:
        self.post(
            self.config["url"], {**payload, "text": describe(payload)}, self.config.get("headers")
        )


class Slack(_HttpTransport):
    kind = "slack"

    def send(self, payload: dict[str, Any]) -> None:
        self.post(self.config["url"], {"text": slack_escape(describe(payload))})


class Email(Transport):
    kind = "email"

    def send(self, payload: dict[str, Any]) -> None:
        parts = urlsplit(self.settings.smtp_url)
        sender = email_address(self.settings.email_from, "SYNMON_EMAIL_FROM")
        to = self.config.get("to")
        if not isinstance(to, list) or not to:
            raise TransportError("'to' must be a list of addresses", permanent=True)
        recipients = [email_address(address, "to") for address in to]
        message = EmailMessage()
        message["Subject"] = header_line(describe(payload), MAX_SUBJECT_CHARS)
        message["From"] = sender
        message["To"] = recipients
        message.set_content(json.dumps(payload, indent=2, default=str))
        smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
        smtp = smtp_class(timeout=TIMEOUT)
        # Each SMTP exchange has its own socket timeout; this bounds the whole delivery,
        # so that a server answering a byte at a time cannot hold the sender.
        alarm = watchdog.arm(perf_counter() + TIMEOUT, lambda: _shut(smtp.sock))
        try:
            smtp.connect(parts.hostname or "127.0.0.1", parts.port or 25)
            if parts.username:
                smtp.login(parts.username, parts.password or "")
            # Envelope addresses given, not read back from the headers.
            smtp.send_message(
                message,
                from_addr=sender.addr_spec,
                to_addrs=[r.addr_spec for r in recipients],
            )
            with suppress(smtplib.SMTPException, OSError):
                smtp.quit()  # delivered already: a lost goodbye is no reason to send again
        except smtplib.SMTPRecipientsRefused as exc:
            raise TransportError(f"recipients refused: {exc}", permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransportError(f"SMTP: {exc}") from None
        finally:
            watchdog.disarm(alarm)
            smtp.close()


def _shut(sock: socket.socket | None) -> None:
    if sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def email_address(value: object, field: str) -> Address:
    """One address, parsed strictly: a line break, a comma or a display name in it would
    add headers or recipients."""
    if not isinstance(value, str) or CONTROL_CHARACTERS.search(value):
        raise TransportError(f"{field}: {value!r} is not an email address", permanent=True)
    try:
        return Address(addr_spec=value)
    except (ValueError, HeaderParseError) as exc:
        raise TransportError(
            f"{field}: {value!r} is not an email address ({exc})", permanent=True
        ) from None


TRANSPORTS: dict[str, type[Transport]] = {t.kind: t for t in (Webhook, Slack, Email)}


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
            if kind is None or config is None:
                return Outcome("failed", f"channel {channel_id!r} no longer exists")
            transport = TRANSPORTS.get(kind)
            if transport is None:
                return Outcome("failed", f"channel {channel_id!r} has unknown type {kind!r}")
            if not isinstance(payload, dict) or not isinstance(config, dict):
                raise TypeError("payload and channel configuration must be JSON objects")
            transport(config, self.settings).send(payload)
        except TransportError as exc:
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

"""Notifications: one small class per channel type, and the sender that drains the outbox.

Each transport has one method, ``send(payload)``, and raises ``TransportError`` saying
whether trying again could help. The sender retries what is not permanent with a
growing delay and gives up after ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import json
import logging
import smtplib
import threading
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.http_transport import GuardedAdapter, Probe, current_probe
from app.ssrf import ForbiddenTarget, TargetGuard
from app.storage.models import ChannelRow, NotificationRow
from config.settings import Settings

log = logging.getLogger("synmon.notify")
MAX_ATTEMPTS = 8
TIMEOUT = 10


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
        token = current_probe.set(Probe(guard=guard))
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
        except requests.RequestException as exc:
            raise TransportError(f"{urlsplit(url).hostname}: {exc}") from None
        finally:
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
        self.post(self.config["url"], {"text": describe(payload)})


class Email(Transport):
    kind = "email"

    def send(self, payload: dict[str, Any]) -> None:
        parts = urlsplit(self.settings.smtp_url)
        message = EmailMessage()
        message["Subject"] = describe(payload)
        message["From"] = self.settings.email_from
        message["To"] = ", ".join(self.config["to"])
        message.set_content(json.dumps(payload, indent=2, default=str))
        smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
        try:
            with smtp_class(
                parts.hostname or "127.0.0.1", parts.port or 25, timeout=TIMEOUT
            ) as smtp:
                if parts.username:
                    smtp.login(parts.username, parts.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise TransportError(f"recipients refused: {exc}", permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransportError(f"SMTP: {exc}") from None


TRANSPORTS: dict[str, type[Transport]] = {t.kind: t for t in (Webhook, Slack, Email)}


class NotificationSender:
    """Drains the notification outbox that ingest fills."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = session_factory
        self.stop = stop or threading.Event()

    def send_due(self, limit: int = 50) -> int:
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            query = (
                select(NotificationRow)
                .where(NotificationRow.status == "pending", NotificationRow.next_attempt_at <= now)
                .order_by(NotificationRow.id)
                .limit(limit)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = session.scalars(query).all()
            channels = {
                c.id: c
                for c in session.scalars(
                    select(ChannelRow).where(ChannelRow.id.in_({r.channel_id for r in rows}))
                )
            }
            for row in rows:
                self._deliver(row, channels.get(row.channel_id), now)
        return len(rows)

    def _deliver(self, row: NotificationRow, channel: ChannelRow | None, now: datetime) -> None:
        row.attempts += 1
        if channel is None:
            row.status, row.last_error = "failed", f"channel {row.channel_id!r} no longer exists"
            return
        try:
            TRANSPORTS[channel.type](channel.config, self.settings).send(row.payload)
        except TransportError as exc:
            row.last_error = str(exc)
            if exc.permanent or row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
                log.error("notification %d to %s failed: %s", row.id, row.channel_id, exc)
            else:
                row.next_attempt_at = now + timedelta(seconds=min(600, 5 * 2**row.attempts))
            return
        row.status, row.sent_at = "sent", now
        log.info("sent %s notification for %s to %s", row.event, row.check_id, row.channel_id)

    def run_forever(self, interval: float = 1.0) -> None:
        while not self.stop.is_set():
            try:
                self.send_due()
            except Exception as exc:  # noqa: BLE001 - a database outage must not end the loop
                log.warning("notification cycle failed: %s", exc)
            self.stop.wait(interval)

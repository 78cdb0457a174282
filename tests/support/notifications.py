"""Notification outbox rows for tests, and a local SMTP server that records what it got."""

from __future__ import annotations

import socketserver
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app.storage.db import sessions
from app.storage.models import ChannelRow, NotificationRow
from tests.support.servers import serving

PAYLOAD: dict[str, Any] = {
    "event": "failure",
    "check_id": "api",
    "check_name": "API",
    "status": "failed",
    "location": "eu-west-1",
    "run_id": str(uuid.uuid4()),
    "error": "connection refused",
    "duration_ms": 12.0,
    "started_at": "2026-11-27T12:00:00+00:00",
    "attempt": 1,
}


@dataclass
class Envelope:
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    data: str = ""


class SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP to accept messages; records each envelope and message."""

    server: SMTPServer

    def handle(self) -> None:
        self.wfile.write(b"220 test ESMTP\r\n")
        envelope = Envelope()
        data: list[str] = []
        in_data = False
        for raw in self.rfile:
            line = raw.decode(errors="replace").rstrip("\r\n")
            if in_data:
                if line == ".":
                    in_data = False
                    envelope.data = "\n".join(data)
                    self.server.envelopes.append(envelope)
                    self.server.messages.append(envelope.data)
                    envelope, data = Envelope(), []
                    self.wfile.write(b"250 queued\r\n")
                else:
                    data.append(line)
                continue
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250 test\r\n")
            elif verb == "MAIL":
                envelope.sender = line.split(":", 1)[1].strip()
                self.wfile.write(b"250 ok\r\n")
            elif verb == "RCPT":
                envelope.recipients.append(line.split(":", 1)[1].strip())
                self.wfile.write(b"250 ok\r\n")
            elif verb == "DATA":
                in_data = True
                self.wfile.write(b"354 go on\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


class SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SMTPHandler)
        self.messages: list[str] = []
        self.envelopes: list[Envelope] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@contextmanager
def smtp_server() -> Iterator[SMTPServer]:
    with serving(SMTPServer()) as server:
        yield server


def add_channel(database_url: str, channel_id: str, kind: str, config: Any) -> None:
    now = datetime.now(UTC)
    with sessions(database_url).begin() as session:
        session.add(
            ChannelRow(id=channel_id, type=kind, config=config, created_at=now, updated_at=now)
        )


def add_notification(database_url: str, channel_id: str, payload: Any = None) -> int:
    """A pending notification, due now; returns its id."""
    now = datetime.now(UTC)
    row = NotificationRow(
        check_id="api",
        channel_id=channel_id,
        event="failure",
        run_id=uuid.uuid4(),
        payload=PAYLOAD if payload is None else payload,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    with sessions(database_url).begin() as session:
        session.add(row)
        session.flush()
        return int(row.id)


def notification_rows(database_url: str) -> dict[int, NotificationRow]:
    with sessions(database_url)() as session:
        return {row.id: row for row in session.scalars(select(NotificationRow))}

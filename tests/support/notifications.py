"""Notification outbox rows for tests, and a local SMTP server that records what it got."""

from __future__ import annotations

import json
import socketserver
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from sqlalchemy import select

from app.storage.db import sessions
from app.storage.models import ChannelRow, NotificationRow
from tests.support.servers import TargetHandler, TargetServer, serving

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


class ChannelAPIHandler(TargetHandler):
    """PagerDuty's Events API v2, Opsgenie's Alert API and a Teams incoming webhook, as
    their documentation describes them: each request is checked as the service would
    check it (refused with the service's status and error), and the alerts it leaves
    open are kept, so that a test sees what an on-call engineer would."""

    server: ChannelAPIServer

    def do_POST(self) -> None:
        path, query, raw = self._request()
        if self.server.fail_with:
            self._send(self.server.fail_with.pop(0), b'{"message": "try later"}')
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._answer(400, {"message": "not JSON"})
            return
        if path == "/v2/enqueue":
            self._pagerduty(body)
        elif path == "/v2/alerts":
            self._opsgenie_create(body)
        elif path.startswith("/v2/alerts/") and path.endswith("/close"):
            self._opsgenie_close(unquote(path[len("/v2/alerts/") : -len("/close")]), query, body)
        elif path == "/teams":
            self._teams(body)
        else:
            self._answer(404, {"message": "no such API"})

    do_PUT = do_GET = do_POST

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        self._send(status, json.dumps(document).encode(), "application/json")

    def _pagerduty(self, event: Any) -> None:
        errors = []
        if not isinstance(event, dict):
            errors.append("Event object is invalid")
            event = {}
        if event.get("routing_key") != self.server.routing_key:
            errors.append("'routing_key' is invalid")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is missing or blank")
        key = event.get("dedup_key")
        if action != "trigger" and not key:
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if isinstance(key, str) and len(key) > 255:
            errors.append("'dedup_key' is longer than 255 characters")
        if action == "trigger":
            payload = event.get("payload") or {}
            if not isinstance(payload, dict) or not payload.get("summary"):
                errors.append("'payload.summary' is missing or blank")
            elif len(payload["summary"]) > 1024:
                errors.append("'payload.summary' is longer than 1024 characters")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                errors.append("'payload.severity' is invalid")
            if not payload.get("source"):
                errors.append("'payload.source' is missing or blank")
            if any(value is None for value in payload.values()):
                errors.append("null fields are not allowed")
        if errors:
            self._answer(
                400,
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
            )
            return
        key = key or uuid.uuid4().hex
        self.server.events.append(event)
        if action == "trigger":
            self.server.open_alerts.setdefault(key, event)
        elif action == "resolve":
            self.server.open_alerts.pop(key, None)
        self._answer(202, {"status": "success", "message": "Event processed", "dedup_key": key})

    def _opsgenie_authorized(self) -> bool:
        if self.headers.get("Authorization") != f"GenieKey {self.server.api_key}":
            self._answer(
                401,
                {"message": "Could not authenticate", "took": 0.0, "requestId": str(uuid.uuid4())},
            )
            return False
        return True

    def _opsgenie_create(self, alert: Any) -> None:
        if not self._opsgenie_authorized():
            return
        if not isinstance(alert, dict) or not alert.get("message"):
            self._answer(
                422,
                {
                    "message": "Request has validation errors",
                    "errors": {"message": "Message can not be empty."},
                },
            )
            return
        problems = {}
        if len(alert["message"]) > 130:
            problems["message"] = "Message can not be longer than 130 characters."
        if len(alert.get("alias") or "") > 512:
            problems["alias"] = "Alias can not be longer than 512 characters."
        if alert.get("priority", "P3") not in ("P1", "P2", "P3", "P4", "P5"):
            problems["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]."
        details = alert.get("details") or {}
        if not all(isinstance(value, str) for value in details.values()):
            problems["details"] = "Details must be a map of strings."
        if problems:
            self._answer(422, {"message": "Request has validation errors", "errors": problems})
            return
        self.server.events.append({"action": "create", **alert})
        alias = alert.get("alias") or str(uuid.uuid4())
        if alias in self.server.open_alerts:
            self.server.open_alerts[alias]["count"] += 1
        else:
            self.server.open_alerts[alias] = {**alert, "count": 1}
        self._answer(
            202,
            {"result": "Request will be processed", "took": 0.01, "requestId": str(uuid.uuid4())},
        )

    def _opsgenie_close(self, identifier: str, query: dict[str, str], body: Any) -> None:
        if not self._opsgenie_authorized():
            return
        if query.get("identifierType", "id") != "alias":
            self._answer(422, {"message": "identifierType must be alias here"})
            return
        self.server.events.append({"action": "close", "alias": identifier, **(body or {})})
        # Opsgenie takes a close of an unknown alert too (202), and fails it later.
        self.server.open_alerts.pop(identifier, None)
        self._answer(
            202,
            {"result": "Request will be processed", "took": 0.01, "requestId": str(uuid.uuid4())},
        )

    def _teams(self, message: Any) -> None:
        try:
            (attachment,) = message["attachments"]
            assert message["type"] == "message"
            assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
            card = attachment["content"]
            assert card["type"] == "AdaptiveCard" and isinstance(card["body"], list)
        except (AssertionError, KeyError, TypeError, ValueError):
            self._answer(400, {"error": {"code": "InvalidRequestContent"}})
            return
        self.server.events.append(message)
        self._send(202, b"")


class ChannelAPIServer(TargetServer):
    def __init__(self, routing_key: str = "R" * 32, api_key: str = "genie-key") -> None:
        super().__init__()
        self.RequestHandlerClass = ChannelAPIHandler
        self.routing_key = routing_key
        self.api_key = api_key
        self.events: list[dict[str, Any]] = []
        self.open_alerts: dict[str, dict[str, Any]] = {}
        # Statuses to answer the next requests with, before looking at them.
        self.fail_with: list[int] = []


@contextmanager
def channel_apis(
    routing_key: str = "R" * 32, api_key: str = "genie-key"
) -> Iterator[ChannelAPIServer]:
    with serving(ChannelAPIServer(routing_key, api_key)) as server:
        yield server

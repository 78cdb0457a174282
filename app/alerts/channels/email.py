"""Email: the event as a one-line subject and its JSON as the body, over SMTP.

Check names and errors come from check authors and from the targets, so nothing of
them may become a header or a recipient: the subject is flattened to one line, every
address is parsed strictly, and the envelope is given explicitly.
"""

from __future__ import annotations

import json
import re
import smtplib
import socket
from contextlib import suppress
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from time import perf_counter
from typing import Any, ClassVar
from urllib.parse import urlsplit

from app.alerts.channels.base import Notifier, NotifierError, NotifierUnavailable, summary_line
from app.execution.http.transport import watchdog

MAX_SUBJECT_CHARS = 200
# C0 and C1 controls and Unicode line and paragraph separators.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Mail:
    message: EmailMessage
    sender: Address
    recipients: list[Address]


def header_line(text: str, limit: int) -> str:
    """``text`` as one header line: check names and errors may hold CR/LF (an injected
    ``Bcc:``), so every control character becomes a space."""
    flat = " ".join(CONTROL_CHARACTERS.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def email_address(value: object, field: str) -> Address:
    """One address, parsed strictly: a line break, a comma or a display name in it would
    add headers or recipients."""
    if not isinstance(value, str) or CONTROL_CHARACTERS.search(value):
        raise NotifierError(f"{field}: {value!r} is not an email address")
    try:
        return Address(addr_spec=value)
    except (ValueError, HeaderParseError) as exc:
        raise NotifierError(f"{field}: {value!r} is not an email address ({exc})") from None


class Email(Notifier[Mail]):
    kind: ClassVar[str] = "email"

    def prepare(self, payload: dict[str, Any]) -> Mail:
        sender = email_address(self.settings.email_from, "SYNMON_EMAIL_FROM")
        to = self.config.get("to")
        if not isinstance(to, list) or not to:
            raise NotifierError("'to' must be a list of addresses")
        recipients = [email_address(address, "to") for address in to]
        message = EmailMessage()
        message["Subject"] = header_line(summary_line(payload), MAX_SUBJECT_CHARS)
        message["From"] = sender
        message["To"] = recipients
        message.set_content(json.dumps(payload, indent=2, default=str))
        return Mail(message, sender, recipients)

    def send(self, message: Mail) -> None:
        parts = urlsplit(self.settings.smtp_url)
        smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
        smtp = smtp_class(timeout=self.timeout)
        # Each SMTP exchange has its own socket timeout; this bounds the whole delivery,
        # so that a server answering a byte at a time cannot hold the sender.
        alarm = watchdog.arm(perf_counter() + self.timeout, lambda: _shut(smtp.sock))
        try:
            smtp.connect(parts.hostname or "127.0.0.1", parts.port or 25)
            if parts.username:
                smtp.login(parts.username, parts.password or "")
            # Envelope addresses given, not read back from the headers.
            smtp.send_message(
                message.message,
                from_addr=message.sender.addr_spec,
                to_addrs=[r.addr_spec for r in message.recipients],
            )
            with suppress(smtplib.SMTPException, OSError):
                smtp.quit()  # delivered already: a lost goodbye is no reason to send again
        except smtplib.SMTPRecipientsRefused as exc:
            raise NotifierError(f"recipients refused: {exc}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifierUnavailable(f"SMTP: {exc}") from None
        finally:
            watchdog.disarm(alarm)
            smtp.close()


def _shut(sock: socket.socket | None) -> None:
    if sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

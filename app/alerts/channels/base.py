"""What every notification channel is: a ``Notifier`` and the error it raises.

A notifier turns one event (the payload ingest wrote into the outbox) into the message
its channel takes (``prepare``), then hands that message over (``send``). ``prepare``
does no I/O: a payload or a channel configuration that cannot work fails there, before
anything is sent. Either method raises ``NotifierError`` saying whether trying again
could help; anything else it raises is a bug, which the sender retries like an outage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import quote, quote_plus

from app.definitions.placeholders import Placeholders, UndefinedVariable
from config.errors import RetryableError, SynmonError
from config.settings import Settings

Message = TypeVar("Message")


class NotifierError(SynmonError):
    """The channel refused the notification, or it cannot be built from the channel's
    configuration: sending it again would fail the same way."""


class NotifierUnavailable(NotifierError, RetryableError):
    """The channel did not take the notification this time (no answer, 5xx, 429)."""


class Notifier(ABC, Generic[Message]):
    """One channel type (``kind``, as a channel definition's ``type`` names it)."""

    kind: ClassVar[str]
    # Bounds a whole delivery (connect, send, answer), not only each read.
    timeout: ClassVar[float] = 10

    def __init__(self, config: dict[str, Any], settings: Settings) -> None:
        self.config = config
        self.settings = settings
        # Channel definitions are stored with their ``{{NAME}}`` placeholders: the values
        # (SYNMON_VAR_NAME on the sending process) are filled in here, at send time only.
        self.placeholders = Placeholders(settings.variables, settings.public_variables)

    def fill(self, text: str, field: str) -> str:
        """``text`` with its placeholders filled in; a missing value is permanent."""
        try:
            return self.placeholders.text(text)
        except UndefinedVariable as exc:
            raise NotifierError(f"{field}: {exc}") from None

    def scrub(self, text: str) -> str:
        """``text`` without any secret value this notifier filled in (for errors)."""
        # Also as a URL or a form encodes it: an answer may echo the request it got.
        forms = {
            form
            for secret in self.placeholders.used
            if secret
            for form in (secret, quote(secret, safe=""), quote_plus(secret))
        }
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, "[secret]")
        return text

    @abstractmethod
    def prepare(self, payload: dict[str, Any]) -> Message:
        """The message for this channel that tells of the event in ``payload``."""

    @abstractmethod
    def send(self, message: Message) -> None:
        """Hand ``message`` over to the channel, within ``timeout`` seconds."""


def summary_line(payload: dict[str, Any]) -> str:
    """The event in one line of text, as every channel shows it."""
    event = payload["event"]
    name = payload.get("check_name") or payload["check_id"]
    where = payload.get("location", "?")
    if event == "failure":
        return f"🔴 {name} is failing in {where}: {payload.get('error') or 'failed'}"
    if event == "recovery":
        return f"🟢 {name} recovered in {where}"
    return f"🟡 {name} is degraded in {where} ({payload.get('duration_ms', 0):.0f} ms)"

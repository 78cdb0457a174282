"""Apprise: every other service (Discord, Telegram, Matrix, ntfy, ... 100+), by URL.

``{type: apprise, url: "discord://{{DISCORD_WEBHOOK}}"}``: the URL is stored with its
placeholders and filled in here, at send time. Apprise makes its connections itself,
so the delivery runs in a child process (``apprise_child``) in which an audit hook
puts every connection and datagram through the target guard, and refuses Unix
sockets, child processes and native libraries. Schemes that reach the desktop or the
local system through native code (D-Bus, GLib, macOS, Windows, syslog, blink(1)) are
refused before anything starts: nothing of theirs could be vetted.

Apprise does not say why a service refused, only that it did: a failed delivery is
retried (``NotifierUnavailable``), up to the sender's attempts. What the guard refused,
a URL Apprise does not know and an unusable scheme fail for good.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

from app.alerts.channels.base import Notifier, NotifierError, NotifierUnavailable, summary_line
from app.alerts.channels.incidents import bounded

# Local schemes: native code (D-Bus, GObject, Win32, libc's syslog, USB) whose
# connections no audit hook sees.
UNVETTED_SCHEMES = frozenset(
    {"dbus", "kde", "qt", "glib", "gio", "gnome", "macosx", "windows", "syslog", "blink1"}
)
NOTIFY_TYPES = {"failure": "failure", "recovery": "success", "degraded": "warning"}
MAX_BODY_CHARS = 4000
# Starting Python and importing Apprise (about a second), on top of the delivery's timeout.
STARTUP_SECONDS = 5.0
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class AppriseMessage:
    url: str
    title: str
    body: str
    notify_type: str


def defuse(text: str) -> str:
    """Text a target controls, without the mentions chat services act on (``@everyone``,
    ``@here``, ``@channel``): a zero-width space after each ``@`` keeps it readable."""
    return text.replace("@", "@\u200b")


class Apprise(Notifier[AppriseMessage]):
    kind: ClassVar[str] = "apprise"

    def prepare(self, payload: dict[str, Any]) -> AppriseMessage:
        template = self.config["url"]
        scheme = template.partition("://")[0].lower()
        if scheme in UNVETTED_SCHEMES:
            raise NotifierError(
                f"url: {scheme}:// notifications cannot go through the target guard "
                "(native code makes their connections); not sent"
            )
        url = self.fill(template, "url")
        incident = payload.get("incident") or {}
        lines = [defuse(summary_line(payload))]
        if isinstance(incident, dict) and incident.get("key"):
            lines.append(f"incident: {incident['key']} (opened {incident.get('opened_at')})")
        lines.append(f"run: {payload.get('run_id')}")
        title = {"failure": "Check failing", "recovery": "Check recovered"}.get(
            payload["event"], "Check degraded"
        )
        return AppriseMessage(
            url,
            f"synmon: {title}",
            bounded("\n".join(lines), MAX_BODY_CHARS),
            NOTIFY_TYPES.get(payload["event"], "info"),
        )

    def send(self, message: AppriseMessage) -> None:
        request = {
            "url": message.url,
            "title": message.title,
            "body": message.body,
            "notify_type": message.notify_type,
            "allow_private": self.settings.allow_private_targets,
            "allowed": [str(entry) for entry in self.settings.allowed_targets],
        }
        budget = self.timeout + STARTUP_SECONDS
        try:
            # The URL, with its secrets, goes in on stdin: never on a command line that
            # ps shows. Nothing of this process's environment is passed on (no proxy,
            # no SYNMON_VAR_*).
            finished = subprocess.run(
                [sys.executable, "-I", "-m", "app.alerts.channels.apprise_child"],
                input=json.dumps(request).encode(),
                capture_output=True,
                timeout=budget,
                env={"PATH": os.defpath, "LANG": "C.UTF-8", "HOME": "/nonexistent"},
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise NotifierUnavailable(f"apprise: no answer within {budget:g}s") from None
        try:
            answer = json.loads(finished.stdout[:MAX_ANSWER_BYTES] or b"null")
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            tail = finished.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise NotifierUnavailable(
                self.scrub(f"apprise: the delivery ended ({finished.returncode}): {tail[0]}")
            )
        if answer.get("unknown"):
            raise NotifierError("url: Apprise does not know this URL (its scheme or its form)")
        if answer.get("refused"):
            raise NotifierError(self.scrub(f"apprise: {'; '.join(answer['refused'])}"))
        if not answer.get("sent"):
            said = "; ".join(str(line) for line in answer.get("log") or []) or "not sent"
            # Scrubbed before it is cut: a cut secret would no longer match.
            raise NotifierUnavailable(bounded(self.scrub(f"apprise: {said}"), 400))

"""One Apprise delivery in a process of its own, every connection of which the target
guard vets: ``python -m app.alerts.channels.apprise_child`` (see ``apprise.py`` here).

Apprise's 100+ services make their own connections (requests, smtplib, paho, slixmpp,
raw sockets), from threads of their own. An audit hook (PEP 578) sees every one of
them at the moment it is made, in whatever thread, and cannot be removed once
installed: here it refuses any connection or datagram to an address the guard
refuses, any Unix socket, and any child process or foreign library a plugin would
start, so that what is not vetted does not happen at all. A process of its own also
bounds the whole delivery: the parent kills it at the deadline.

Reads one JSON request on stdin, writes one JSON answer on stdout.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import sys
from typing import Any

from app.execution.guard import ForbiddenTarget, TargetGuard

# Events that start what the hook cannot vet: another process, or native code that
# makes connections of its own.
REFUSED_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "pty.spawn",
    }
)
# Refused once the plugin is loaded: importing ctypes (as Apprise's locale module does)
# opens libpython itself, but a plugin that loads a library to notify through it would
# make connections no hook sees.
LOADING_EVENTS = frozenset({"ctypes.dlopen"})


class Phase:
    loaded = False  # the plugin is loaded and its URL parsed


phase = Phase()
CONNECTING_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})


class Refused(PermissionError):
    """Raised into the plugin that tried; also recorded, since a plugin may swallow it."""


refusals: list[str] = []


def install_guard(guard: TargetGuard) -> None:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in REFUSED_EVENTS or (phase.loaded and event in LOADING_EVENTS):
            refuse(f"{event} is not allowed in an Apprise delivery")
        if event not in CONNECTING_EVENTS:
            return
        sock, address = args[0], args[1] if len(args) > 1 else None
        if address is None:  # sendmsg on a connected socket: vetted when it connected
            return
        family = getattr(sock, "family", None)
        if family not in (socket.AF_INET, socket.AF_INET6):
            refuse(f"connections of family {family!r} cannot be vetted")
        host, port = str(address[0]), int(address[1])
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            # A name (urllib3 and smtplib connect to addresses) would be resolved here and
            # again by the connect itself: a rebinding name could pass here and reach
            # loopback there. Only addresses, which are what is vetted, are let through.
            refuse(f"a connection to a name ({host}) cannot be vetted; only to addresses")
        try:
            guard.resolve(host, port)
        except ForbiddenTarget as exc:
            refuse(str(exc))
        except OSError as exc:
            refuse(f"cannot resolve {host}: {exc}")

    sys.addaudithook(hook)


def refuse(reason: str) -> None:
    if reason not in refusals:
        refusals.append(reason)
    raise Refused(reason)


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.lines) < 20:
            self.lines.append(record.getMessage()[:500])


def deliver(request: dict[str, Any]) -> dict[str, Any]:
    # Before Apprise is imported: nothing of it, its plugins or what they load runs unvetted.
    install_guard(TargetGuard(bool(request["allow_private"]), request["allowed"]))
    import apprise

    collector = Collector()
    logging.getLogger("apprise").addHandler(collector)
    logging.getLogger("apprise").setLevel(logging.WARNING)
    asset = apprise.AppriseAsset(storage_mode=apprise.PersistentStoreMode.MEMORY)
    notifier = apprise.Apprise(asset=asset)
    if not notifier.add(request["url"]):
        return {"sent": False, "unknown": True, "refused": refusals, "log": collector.lines}
    phase.loaded = True
    try:
        sent = bool(
            notifier.notify(
                title=request["title"],
                body=request["body"],
                notify_type=request["notify_type"],
                body_format=apprise.NotifyFormat.TEXT,
            )
        )
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
        collector.lines.append(f"{type(exc).__name__}: {exc}"[:500])
        sent = False
    return {
        "sent": sent and not refusals,
        "unknown": False,
        "refused": refusals,
        "log": collector.lines,
    }


def main() -> None:
    request = json.loads(sys.stdin.read())
    answer = deliver(request)
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

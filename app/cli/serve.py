"""Commands that serve until they are told to stop (``synmon ingest``, ``synmon web``)."""

from __future__ import annotations

import signal
import threading


def until_signal() -> threading.Event:
    """An event that SIGTERM or SIGINT sets: the process finishes its current work and
    returns instead of dying mid-write (SIGTERM is how systemd and Docker stop it)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop

"""``synmon health``: is this process connected and consuming?

Each synmon process (worker, beat, ingest) keeps a small file up to date in
``$SYNMON_DATA_DIR/health/`` saying what it is doing; ``synmon health`` reads it. A
Docker HEALTHCHECK, the Terraform readiness check and the local rollout all ask the
same question this way, without any network port.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from config.settings import Settings

READY = "consuming"
INTERVAL = 2.0
MAX_AGE = 15.0


@dataclass(frozen=True)
class Health:
    name: str
    pid: int
    state: str  # consuming | starting | stopping | sqs-unreachable | ...
    release: str
    queues: list[str]
    updated_at: float

    @property
    def age(self) -> float:
        return time.time() - self.updated_at

    def ready(self, max_age: float = MAX_AGE) -> bool:
        return self.state == READY and self.age <= max_age


def folder(settings: Settings) -> Path:
    return settings.data_dir / "health"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)


def write(settings: Settings, name: str, state: str, queues: list[str]) -> None:
    path = folder(settings) / f"{_safe(name)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = Health(name, os.getpid(), state, settings.release, queues, time.time())
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(document)))
    temporary.replace(path)  # atomic: a reader never sees half a file


def read(settings: Settings, name: str | None = None) -> list[Health]:
    found = []
    for path in sorted(folder(settings).glob("*.json")):
        try:
            document = json.loads(path.read_text())
            health = Health(**document)
        except (OSError, ValueError, TypeError):
            continue
        if name is None or health.name == name:
            found.append(health)
    return found


class Reporter:
    """Writes the health file every few seconds from a thread, until stopped."""

    def __init__(
        self, settings: Settings, name: str, queues: list[str], state: Callable[[], str]
    ) -> None:
        self.settings, self.name, self.queues, self.state = settings, name, queues, state
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> Reporter:
        self.stopping.clear()
        self.thread = threading.Thread(target=self._run, name="synmon-health", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stopping.is_set():
            # A full or read-only disk shows as a stale file: unhealthy, as it should.
            with contextlib.suppress(OSError):
                write(self.settings, self.name, self.state(), self.queues)
            self.stopping.wait(INTERVAL)

    def stop(self, state: str = "stopping") -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        with contextlib.suppress(OSError):
            write(self.settings, self.name, state, self.queues)


def summary(healths: list[Health], max_age: float) -> dict[str, Any]:
    return {
        "ready": bool(healths) and all(h.ready(max_age) for h in healths),
        "processes": [
            {**asdict(h), "age_s": round(h.age, 1), "ready": h.ready(max_age)} for h in healths
        ],
    }

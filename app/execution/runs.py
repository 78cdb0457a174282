"""A run request and its result as synmon's code sees them, whatever wire version carried them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from config.settings import CURRENT_MESSAGE_VERSION

Status = Literal["passed", "degraded", "failed"]
Trigger = Literal["schedule", "manual", "retry"]


@dataclass(frozen=True)
class RunRequest:
    run_id: uuid.UUID
    check: dict[str, Any]
    location: str
    scheduled_at: datetime
    attempt: int = 1
    root_run_id: uuid.UUID | None = None
    # None when the request came as version 1, which does not say.
    trigger: Trigger | None = "schedule"
    dispatched_at: datetime | None = None

    @property
    def check_id(self) -> str:
        return str(self.check["id"])

    @property
    def kind(self) -> str:
        return str(self.check["type"])

    @property
    def root(self) -> uuid.UUID:
        return self.root_run_id or self.run_id


@dataclass
class RunResult:
    run_id: uuid.UUID
    check_id: str
    kind: str
    location: str
    status: Status
    scheduled_at: datetime
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    attempt: int = 1
    root_run_id: uuid.UUID | None = None
    deliveries: int = 1
    timings: dict[str, float] = field(default_factory=dict)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    error_kind: str | None = None
    response: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    worker_version: str = ""
    worker_host: str = ""
    message_version: int = CURRENT_MESSAGE_VERSION
    # Added in version 2; a version 1 result does not say (None).
    trigger: Trigger | None = None

    @property
    def root(self) -> uuid.UUID:
        return self.root_run_id or self.run_id

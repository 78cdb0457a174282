"""A run request and its result as synmon's code sees them, whatever wire version carried them.

``RunResult``'s fields are written here once. What else needs them derives from them: the
wire versions (app/pipeline/wire/), the row of ``check_runs`` (app/pipeline/ingest.py), the
runs the web shows (app/web/documents.py), and a result from an observation (outcome.py). A
field's metadata says what it is for beyond being carried and stored:

* ``view``: ``"summary"`` if every listing of runs shows it, ``"detail"`` if only the full
  view of a run does; no view if nobody reads it but synmon.
* ``clip``: text a worker reports about itself, which storage cuts to fit rather than
  refuse the result for.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from config.settings import CURRENT_MESSAGE_VERSION

Status = Literal["passed", "degraded", "failed"]
Trigger = Literal["schedule", "manual", "retry"]
View = Literal["summary", "detail"]

SUMMARY = MappingProxyType({"view": "summary"})
DETAIL = MappingProxyType({"view": "detail"})


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
    run_id: uuid.UUID = field(metadata=SUMMARY)
    check_id: str = field(metadata=SUMMARY)
    kind: str = field(metadata=SUMMARY)
    location: str = field(metadata=SUMMARY)
    status: Status = field(metadata=SUMMARY)
    scheduled_at: datetime = field(metadata=SUMMARY)
    started_at: datetime = field(metadata=SUMMARY)
    finished_at: datetime
    duration_ms: float = field(metadata=SUMMARY)
    attempt: int = field(default=1, metadata=SUMMARY)
    root_run_id: uuid.UUID | None = None
    deliveries: int = 1
    timings: dict[str, float] = field(default_factory=dict, metadata=DETAIL)
    assertions: list[dict[str, Any]] = field(default_factory=list, metadata=DETAIL)
    error: str | None = field(default=None, metadata=SUMMARY)
    error_kind: str | None = field(default=None, metadata=SUMMARY)
    response: dict[str, Any] = field(default_factory=dict, metadata=DETAIL)
    artifacts: list[dict[str, Any]] = field(default_factory=list, metadata=DETAIL)
    worker_version: str = field(default="", metadata={**SUMMARY, "clip": True})
    worker_host: str = field(default="", metadata={**DETAIL, "clip": True})
    message_version: int = CURRENT_MESSAGE_VERSION
    # Added in version 2; a version 1 result does not say (None).
    trigger: Trigger | None = None

    @property
    def root(self) -> uuid.UUID:
        return self.root_run_id or self.run_id


def result_fields(view: View | None = None) -> tuple[str, ...]:
    """The names of ``RunResult``'s fields, in their order; with ``view``, those it shows."""
    return tuple(
        f.name for f in fields(RunResult) if view is None or f.metadata.get("view") == view
    )


def clipped_fields() -> tuple[str, ...]:
    """The fields that storage may cut to its length (see the module's docstring)."""
    return tuple(f.name for f in fields(RunResult) if f.metadata.get("clip"))

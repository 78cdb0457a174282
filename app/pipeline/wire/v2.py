"""Message version 2: the times, the failure, the attempt and the worker nested in objects.

* run request: ``scheduled_at`` moved into a ``schedule`` object that also carries
  ``dispatched_at`` and ``trigger``; ``attempt`` (a number) became an object
  ``{"number", "root_run_id"}``.
* result: ``error`` became ``failure: {"message", "kind"}``; the times moved into
  ``timing: {"scheduled_at", "started_at", "finished_at", "duration_ms", "phases"}``
  (``timings`` renamed ``phases``); ``worker_version``/``worker_host`` became
  ``worker: {"version", "host"}``; ``attempt`` became ``{"number", "root_run_id",
  "deliveries", "trigger"}``, the trigger (schedule, manual, retry) being new.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from app.execution.runs import RunRequest, RunResult, Status, Trigger
from app.pipeline.wire.base import Layout, Wire

VERSION = 2


class Schedule(Wire):
    scheduled_at: datetime
    dispatched_at: datetime | None = None
    trigger: Trigger = "schedule"


class RequestAttempt(Wire):
    number: int = Field(ge=1, le=100)
    root_run_id: uuid.UUID | None = None


class RunRequestV2(Wire):
    v: Literal[2]
    run_id: uuid.UUID
    check: dict[str, Any]
    location: str = Field(min_length=1, max_length=40)
    schedule: Schedule
    attempt: RequestAttempt


class Timing(Wire):
    scheduled_at: datetime
    started_at: datetime
    finished_at: datetime
    duration_ms: float = Field(ge=0)
    phases: dict[str, float] = Field(default_factory=dict)


class Failure(Wire):
    message: str
    kind: str | None = None


class ResultAttempt(Wire):
    number: int = Field(ge=1)
    root_run_id: uuid.UUID | None = None
    deliveries: int = Field(default=1, ge=1)
    trigger: Trigger | None = None


class Worker(Wire):
    version: str = ""
    host: str = ""


class ResultV2(Wire):
    v: Literal[2]
    run_id: uuid.UUID
    check_id: str
    kind: str
    location: str
    status: Status
    timing: Timing
    attempt: ResultAttempt
    assertions: list[dict[str, Any]] = Field(default_factory=list)
    # null when the run did not fail
    failure: Failure | None = None
    response: dict[str, Any] = Field(default_factory=dict)
    artifacts: list[dict[str, Any]] = Field(default_factory=list)
    worker: Worker = Field(default_factory=Worker)


# The fields whose names differ from synmon's; every other one carries its namesake.
REQUEST = Layout(RunRequestV2, RunRequest, {"attempt.number": "attempt"})
RESULT = Layout(
    ResultV2,
    RunResult,
    {
        "timing.phases": "timings",
        "attempt.number": "attempt",
        "failure.message": "error",
        "failure.kind": "error_kind",
        "worker.version": "worker_version",
        "worker.host": "worker_host",
    },
)


def encode_run_request(request: RunRequest) -> dict[str, Any]:
    return REQUEST.encode(request)


def decode_run_request(raw: dict[str, Any]) -> RunRequest:
    return RunRequest(**REQUEST.decode(RunRequestV2.model_validate(raw)))


def encode_result(result: RunResult) -> dict[str, Any]:
    return RESULT.encode(result)


def decode_result(raw: dict[str, Any]) -> RunResult:
    return RunResult(**RESULT.decode(ResultV2.model_validate(raw)), message_version=VERSION)

"""Message version 1: flat run requests and results, their fields named as synmon names them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from app.execution.runs import RunRequest, RunResult, Status
from app.pipeline.wire.base import Layout, Wire

VERSION = 1


class RunRequestV1(Wire):
    v: Literal[1]
    run_id: uuid.UUID
    check: dict[str, Any]
    location: str = Field(min_length=1, max_length=40)
    scheduled_at: datetime
    attempt: int = Field(default=1, ge=1, le=100)
    root_run_id: uuid.UUID | None = None
    dispatched_at: datetime | None = None


class ResultV1(Wire):
    v: Literal[1]
    run_id: uuid.UUID
    check_id: str
    kind: str = "http"
    location: str
    status: Status
    scheduled_at: datetime
    started_at: datetime
    finished_at: datetime | None = None
    duration_ms: float = Field(ge=0)
    attempt: int = Field(default=1, ge=1)
    root_run_id: uuid.UUID | None = None
    deliveries: int = Field(default=1, ge=1)
    timings: dict[str, float] = Field(default_factory=dict)
    assertions: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None
    error_kind: str | None = None
    response: dict[str, Any] = Field(default_factory=dict)
    artifacts: list[dict[str, Any]] = Field(default_factory=list)
    worker_version: str = ""
    worker_host: str = ""


REQUEST = Layout(RunRequestV1, RunRequest)
RESULT = Layout(ResultV1, RunResult)


def encode_run_request(request: RunRequest) -> dict[str, Any]:
    return REQUEST.encode(request)


def decode_run_request(raw: dict[str, Any]) -> RunRequest:
    message = RunRequestV1.model_validate(raw)
    # Version 1 does not carry the trigger; only a retry can be told apart.
    return RunRequest(**REQUEST.decode(message), trigger="retry" if message.attempt > 1 else None)


def encode_result(result: RunResult) -> dict[str, Any]:
    return RESULT.encode(result)


def decode_result(raw: dict[str, Any]) -> RunResult:
    values = RESULT.decode(ResultV1.model_validate(raw))
    # Early version 1 workers did not write finished_at.
    values["finished_at"] = values["finished_at"] or values["started_at"]
    return RunResult(**values, message_version=VERSION)

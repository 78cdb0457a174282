"""The JSON messages between synmon's processes, in every version still spoken.

Two kinds of message: a *run request* (dispatcher -> worker) and a *result* (worker ->
ingest). Each carries ``"v"``. Consumers accept the current version and the previous
one, so that during a rolling update old and new processes can read each other;
producers write the version that ``SYNMON_MESSAGE_VERSION`` selects.

Version 2 changed the shape of both messages (a real change, not a new optional field):

* run request: ``scheduled_at`` moved into a ``schedule`` object that also carries
  ``dispatched_at`` and ``trigger``; ``attempt`` (a number) became an object
  ``{"number", "root_run_id"}``.
* result: ``error`` became ``failure: {"message", "kind"}``; the times moved into
  ``timing: {"scheduled_at", "started_at", "finished_at", "duration_ms", "phases"}``
  (``timings`` renamed ``phases``); ``worker_version``/``worker_host`` became
  ``worker: {"version", "host"}``; ``attempt`` became ``{"number", "root_run_id",
  "deliveries", "trigger"}``, the trigger (schedule, manual, retry) being new.

Inside synmon every version decodes to the same ``RunRequest`` and ``RunResult``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.execution.runs import RunRequest, RunResult, Status, Trigger
from config.settings import CURRENT_MESSAGE_VERSION, SUPPORTED_MESSAGE_VERSIONS

# SQS refuses messages over 256 KiB. A run request carries a check snapshot, a result
# a bounded excerpt; anything near the limit is a bug or an attack, not a check.
MAX_MESSAGE_BYTES = 192 * 1024


class MessageError(ValueError):
    """A message synmon cannot process, however often it is delivered (poison)."""


# ------------------------------------------------------------------ wire models
class Wire(BaseModel):
    # Unknown fields are ignored: a newer minor producer may add some.
    model_config = ConfigDict(extra="ignore", frozen=True)


class RunRequestV1(Wire):
    v: Literal[1]
    run_id: uuid.UUID
    check: dict[str, Any]
    location: str = Field(min_length=1, max_length=40)
    scheduled_at: datetime
    attempt: int = Field(default=1, ge=1, le=100)
    root_run_id: uuid.UUID | None = None
    dispatched_at: datetime | None = None


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
    failure: Failure | None = None
    response: dict[str, Any] = Field(default_factory=dict)
    artifacts: list[dict[str, Any]] = Field(default_factory=list)
    worker: Worker = Field(default_factory=Worker)


# ------------------------------------------------------------------ encoding
def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_run_request(
    request: RunRequest, version: int = CURRENT_MESSAGE_VERSION
) -> dict[str, Any]:
    root = str(request.root_run_id) if request.root_run_id else None
    if version == 1:
        return {
            "v": 1,
            "run_id": str(request.run_id),
            "check": request.check,
            "location": request.location,
            "scheduled_at": _iso(request.scheduled_at),
            "attempt": request.attempt,
            "root_run_id": root,
            "dispatched_at": _iso(request.dispatched_at),
        }
    if version == 2:
        return {
            "v": 2,
            "run_id": str(request.run_id),
            "check": request.check,
            "location": request.location,
            "schedule": {
                "scheduled_at": _iso(request.scheduled_at),
                "dispatched_at": _iso(request.dispatched_at),
                "trigger": request.trigger,
            },
            "attempt": {"number": request.attempt, "root_run_id": root},
        }
    raise ValueError(f"cannot write run requests of version {version}")


def run_request_json(
    request: RunRequest, version: int = CURRENT_MESSAGE_VERSION, check_json: str | None = None
) -> str:
    """``encode_run_request`` as compact JSON text.

    ``check_json``, the check definition as the database stores it, is spliced in
    rather than decoded and encoded again: the definition is most of the message, and
    the dispatcher writes thousands of messages a second.
    """
    document = encode_run_request(replace(request, check={}), version)
    text = json.dumps(document, separators=(",", ":"))
    if check_json is None:
        check_json = json.dumps(request.check, separators=(",", ":"))
    # "check" follows "v" and "run_id" (a UUID): its first occurrence is the key.
    return text.replace('"check":{}', '"check":' + check_json, 1)


def _check_version(raw: Any) -> int:
    if not isinstance(raw, dict):
        raise MessageError(f"expected a JSON object, got {type(raw).__name__}")
    version = raw.get("v")
    if version not in SUPPORTED_MESSAGE_VERSIONS:
        raise MessageError(
            f"unknown message version {version!r}; this release reads "
            f"{', '.join(map(str, SUPPORTED_MESSAGE_VERSIONS))}"
        )
    return int(version)


def _check_size(raw: Any) -> None:
    size = len(json.dumps(raw, separators=(",", ":"), default=str))
    if size > MAX_MESSAGE_BYTES:
        raise MessageError(f"message of {size} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")


def _invalid(exc: ValidationError) -> MessageError:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "message"
    return MessageError(f"invalid message: {where}: {first['msg']} ({exc.error_count()} error(s))")


def decode_run_request(raw: Any) -> RunRequest:
    """A ``RunRequest`` from a wire dict of any supported version; ``MessageError`` if not."""
    version = _check_version(raw)
    _check_size(raw)
    try:
        if version == 1:
            v1 = RunRequestV1.model_validate(raw)
            request = RunRequest(
                run_id=v1.run_id,
                check=v1.check,
                location=v1.location,
                scheduled_at=_aware(v1.scheduled_at),
                attempt=v1.attempt,
                root_run_id=v1.root_run_id,
                trigger="retry" if v1.attempt > 1 else None,
                dispatched_at=_aware(v1.dispatched_at) if v1.dispatched_at else None,
            )
        else:
            v2 = RunRequestV2.model_validate(raw)
            request = RunRequest(
                run_id=v2.run_id,
                check=v2.check,
                location=v2.location,
                scheduled_at=_aware(v2.schedule.scheduled_at),
                attempt=v2.attempt.number,
                root_run_id=v2.attempt.root_run_id,
                trigger=v2.schedule.trigger,
                dispatched_at=_aware(v2.schedule.dispatched_at)
                if v2.schedule.dispatched_at
                else None,
            )
    except ValidationError as exc:
        raise _invalid(exc) from None
    if not isinstance(request.check.get("id"), str) or request.check.get("type") not in (
        "http",
        "browser",
    ):
        raise MessageError("invalid message: check: needs an id and a type of http or browser")
    return request


def encode_result(result: RunResult, version: int = CURRENT_MESSAGE_VERSION) -> dict[str, Any]:
    root = str(result.root_run_id) if result.root_run_id else None
    if version == 1:
        return {
            "v": 1,
            "run_id": str(result.run_id),
            "check_id": result.check_id,
            "kind": result.kind,
            "location": result.location,
            "status": result.status,
            "scheduled_at": _iso(result.scheduled_at),
            "started_at": _iso(result.started_at),
            "finished_at": _iso(result.finished_at),
            "duration_ms": result.duration_ms,
            "attempt": result.attempt,
            "root_run_id": root,
            "deliveries": result.deliveries,
            "timings": result.timings,
            "assertions": result.assertions,
            "error": result.error,
            "error_kind": result.error_kind,
            "response": result.response,
            "artifacts": result.artifacts,
            "worker_version": result.worker_version,
            "worker_host": result.worker_host,
        }
    if version == 2:
        return {
            "v": 2,
            "run_id": str(result.run_id),
            "check_id": result.check_id,
            "kind": result.kind,
            "location": result.location,
            "status": result.status,
            "timing": {
                "scheduled_at": _iso(result.scheduled_at),
                "started_at": _iso(result.started_at),
                "finished_at": _iso(result.finished_at),
                "duration_ms": result.duration_ms,
                "phases": result.timings,
            },
            "attempt": {
                "number": result.attempt,
                "root_run_id": root,
                "deliveries": result.deliveries,
                "trigger": result.trigger,
            },
            "assertions": result.assertions,
            "failure": (
                {"message": result.error, "kind": result.error_kind}
                if result.error is not None
                else None
            ),
            "response": result.response,
            "artifacts": result.artifacts,
            "worker": {"version": result.worker_version, "host": result.worker_host},
        }
    raise ValueError(f"cannot write results of version {version}")


def decode_result(raw: Any) -> RunResult:
    version = _check_version(raw)
    _check_size(raw)
    try:
        if version == 1:
            v1 = ResultV1.model_validate(raw)
            started = _aware(v1.started_at)
            return RunResult(
                run_id=v1.run_id,
                check_id=v1.check_id,
                kind=v1.kind,
                location=v1.location,
                status=v1.status,
                scheduled_at=_aware(v1.scheduled_at),
                started_at=started,
                finished_at=_aware(v1.finished_at) if v1.finished_at else started,
                duration_ms=v1.duration_ms,
                attempt=v1.attempt,
                root_run_id=v1.root_run_id,
                deliveries=v1.deliveries,
                timings=v1.timings,
                assertions=v1.assertions,
                error=v1.error,
                error_kind=v1.error_kind,
                response=v1.response,
                artifacts=v1.artifacts,
                worker_version=v1.worker_version,
                worker_host=v1.worker_host,
                message_version=1,
            )
        v2 = ResultV2.model_validate(raw)
        return RunResult(
            run_id=v2.run_id,
            check_id=v2.check_id,
            kind=v2.kind,
            location=v2.location,
            status=v2.status,
            scheduled_at=_aware(v2.timing.scheduled_at),
            started_at=_aware(v2.timing.started_at),
            finished_at=_aware(v2.timing.finished_at),
            duration_ms=v2.timing.duration_ms,
            attempt=v2.attempt.number,
            root_run_id=v2.attempt.root_run_id,
            deliveries=v2.attempt.deliveries,
            timings=v2.timing.phases,
            assertions=v2.assertions,
            error=v2.failure.message if v2.failure else None,
            error_kind=v2.failure.kind if v2.failure else None,
            response=v2.response,
            artifacts=v2.artifacts,
            worker_version=v2.worker.version,
            worker_host=v2.worker.host,
            message_version=2,
            trigger=v2.attempt.trigger,
        )
    except ValidationError as exc:
        raise _invalid(exc) from None


def result_body(result: RunResult, version: int) -> str:
    """The SQS body of a result: compact JSON."""
    return json.dumps(encode_result(result, version), separators=(",", ":"))


def parse_body(body: str | bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}") from None

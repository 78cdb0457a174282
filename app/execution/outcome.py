"""From what a run observed to its status and its result, the same for every check type."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.definitions.models import Check
from app.execution.redact import redactor_for
from app.execution.runs import RunRequest, RunResult, Status
from config.settings import Settings

# Why a check failed; retries with ``network_only`` happen for the first two only.
NETWORK = "network"
TIMEOUT = "timeout"
ASSERTION = "assertion"
RESPONSE_TIME = "response_time"
FORBIDDEN = "forbidden_target"
CONFIG = "config"
BROWSER = "browser"
NETWORK_KINDS = frozenset({NETWORK, TIMEOUT})
# The longest error a result carries (characters, after redaction).
ERROR_LIMIT = 2000

HOST = socket.gethostname()


@dataclass
class Observation:
    """What a check run saw; ``to_result`` turns it into the result message."""

    started_at: datetime
    started: float = field(default_factory=time.perf_counter)
    duration_ms: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    error_kind: str | None = None
    response: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)

    def stop(self) -> None:
        self.duration_ms = round((time.perf_counter() - self.started) * 1000, 2)

    def fail(self, kind: str, message: str) -> None:
        if self.error is None:  # the first failure is the cause; later ones are consequences
            self.error, self.error_kind = message, kind


def decide_status(check: Check, observation: Observation) -> Status:
    """failed if anything failed or the run took longer than max_response_time;
    degraded if it passed but took longer than degraded_response_time."""
    if observation.error is None and check.max_response_time is not None:
        limit_ms = check.max_response_time * 1000
        if observation.duration_ms > limit_ms:
            observation.fail(
                RESPONSE_TIME,
                f"took {observation.duration_ms:.0f} ms, over max_response_time {limit_ms:.0f} ms",
            )
    if observation.error is not None:
        return "failed"
    if (
        check.degraded_response_time is not None
        and observation.duration_ms > check.degraded_response_time * 1000
    ):
        return "degraded"
    return "passed"


def to_result(
    check: Check,
    request: RunRequest,
    observation: Observation,
    settings: Settings,
    deliveries: int,
    secrets: set[str] | None = None,
) -> RunResult:
    status = decide_status(check, observation)
    result = RunResult(
        run_id=request.run_id,
        check_id=check.id,
        kind=check.type,
        location=request.location,
        status=status,
        scheduled_at=request.scheduled_at,
        started_at=observation.started_at,
        finished_at=observation.started_at + timedelta(milliseconds=observation.duration_ms),
        duration_ms=observation.duration_ms,
        attempt=request.attempt,
        root_run_id=request.root_run_id,
        deliveries=deliveries,
        timings=observation.timings,
        assertions=observation.assertions,
        error=observation.error,
        error_kind=observation.error_kind,
        response=observation.response,
        artifacts=observation.artifacts,
        worker_version=settings.release,
        worker_host=HOST,
        message_version=settings.message_version,
        trigger=request.trigger,
    )
    return redact_result(result, frozenset([*settings.variables.values(), *(secrets or ())]))


def invalid_definition_result(
    request: RunRequest, reason: str, settings: Settings, deliveries: int
) -> RunResult:
    """The failed result of a run whose check definition this release cannot run."""
    now = datetime.now(UTC)
    result = RunResult(
        run_id=request.run_id,
        check_id=str(request.check.get("id")),
        kind=request.kind,
        location=request.location,
        status="failed",
        scheduled_at=request.scheduled_at,
        started_at=now,
        finished_at=now,
        duration_ms=0.0,
        attempt=request.attempt,
        root_run_id=request.root_run_id,
        deliveries=deliveries,
        error=reason,
        error_kind=CONFIG,
        worker_version=settings.release,
        worker_host=HOST,
        message_version=settings.message_version,
        trigger=request.trigger,
    )
    return redact_result(result, frozenset(settings.variables.values()))


def redact_result(result: RunResult, secrets: frozenset[str]) -> RunResult:
    """Remove every secret value from the parts of a result that echo the target.

    The error is bounded here, after its redaction, so that a check kind may hand over
    a long error and never has to cut it (and cut a secret in half) itself.
    """
    redactor = redactor_for(secrets)
    if result.error is not None:
        result.error = redactor.cut(result.error, ERROR_LIMIT)
    if not redactor.active:
        return result
    result.assertions = redactor.value(result.assertions)
    result.response = redactor.value(result.response)
    result.timings = redactor.value(result.timings)
    result.artifacts = redactor.value(result.artifacts)
    return result

"""From what a run observed to its status and its result, the same for every check type."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from app.definitions.models import Check
from app.execution.redact import redactor_for
from app.execution.runs import RunRequest, RunResult, Status, result_fields
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


def _shared(source: type[Any]) -> tuple[str, ...]:
    """The fields of ``source`` that a ``RunResult`` carries under the same name."""
    carried = set(result_fields())
    return tuple(f.name for f in fields(source) if f.name in carried)


# What a run observed, and what its request said, goes into its result unchanged.
OBSERVED = _shared(Observation)
REQUESTED = _shared(RunRequest)


def _result(request: RunRequest, settings: Settings, deliveries: int, **values: Any) -> RunResult:
    """The result of ``request``: what the request and this worker say, and ``values``."""
    return RunResult(
        **{name: getattr(request, name) for name in REQUESTED},
        deliveries=deliveries,
        worker_version=settings.release,
        worker_host=HOST,
        message_version=settings.message_version,
        **values,
    )


def to_result(
    check: Check,
    request: RunRequest,
    observation: Observation,
    settings: Settings,
    deliveries: int,
    secrets: set[str] | None = None,
) -> RunResult:
    status = decide_status(check, observation)
    result = _result(
        request,
        settings,
        deliveries,
        **{name: getattr(observation, name) for name in OBSERVED},
        check_id=check.id,
        kind=check.type,
        status=status,
        finished_at=observation.started_at + timedelta(milliseconds=observation.duration_ms),
    )
    return redact_result(result, frozenset([*settings.variables.values(), *(secrets or ())]))


def invalid_definition_result(
    request: RunRequest, reason: str, settings: Settings, deliveries: int
) -> RunResult:
    """The failed result of a run whose check definition this release cannot run."""
    now = datetime.now(UTC)
    result = _result(
        request,
        settings,
        deliveries,
        check_id=str(request.check.get("id")),
        kind=request.kind,
        status="failed",
        started_at=now,
        finished_at=now,
        duration_ms=0.0,
        error=reason,
        error_kind=CONFIG,
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

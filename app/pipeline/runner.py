"""Running one run request on a worker: decode, run the check, publish the result.

Used by the Celery tasks and callable without Celery. A *check* that fails returns a
failed result like any other; a *job* that cannot be done raises, so that its message
is not deleted and SQS delivers it again (and, after maxReceiveCount, to the DLQ).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from app.definitions.models import Check
from app.execution.outcome import invalid_definition_result
from app.execution.runs import RunRequest, RunResult
from app.pipeline.queues import queue_name
from app.pipeline.sqs import client_for, queue_urls
from app.pipeline.wire import MessageError, decode_run_request, result_body
from config.settings import Settings

log = logging.getLogger("synmon.run")

Executor = Callable[[Check, RunRequest, int], RunResult]


def decode(raw: Any, kind: str) -> tuple[RunRequest, Check | str]:
    """The request and its check, or the request and why its check is not valid here.

    A readable request whose definition this release refuses (stored by a release with
    looser limits, say) is a run that ends as a failed result naming the field, not a
    job that goes to the DLQ: every scheduled run ends as one stored result.
    """
    request = decode_run_request(raw)
    if request.kind != kind:
        raise MessageError(f"a {request.kind} check arrived on a {kind} worker")
    try:
        return request, Check.model_validate(request.check)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "check"
        return request, (
            f"the check's definition is not valid for this worker ({where}: {first['msg']}); "
            "fix it and run synmon sync"
        )


def publish_result(result: RunResult, settings: Settings) -> None:
    name = queue_name(settings, "results")
    client_for(settings, name).send_message(
        QueueUrl=queue_urls(settings)(name),
        MessageBody=result_body(result, settings.message_version),
    )


def log_run(result: RunResult) -> None:
    """One line per run, with no response content and no placeholder values."""
    log.info(
        "run %s of %s in %s: %s in %.0f ms",
        result.run_id,
        result.check_id,
        result.location,
        result.status,
        result.duration_ms,
        extra={
            "run_id": str(result.run_id),
            "check_id": result.check_id,
            "location": result.location,
            "kind": result.kind,
            "status": result.status,
            "duration_ms": result.duration_ms,
            "attempt": result.attempt,
            "deliveries": result.deliveries,
            "error_kind": result.error_kind,
        },
    )


def execute(
    raw: Any,
    kind: str,
    deliveries: int,
    settings: Settings,
    executor: Executor,
    on_job_failure: Callable[[], None] | None = None,
) -> RunResult:
    """Run ``raw`` (a run request as received) and publish its result.

    Raises ``MessageError`` for a message no retry will fix, and whatever running or
    publishing raised when the job could not be done; both leave the message to SQS,
    after ``on_job_failure`` (which schedules its redelivery).
    """
    try:
        try:
            request, check = decode(raw, kind)
        except MessageError as exc:
            log.error(
                "rejected a %s run request (delivery %d): %s",
                kind,
                deliveries,
                exc,
                extra={"deliveries": deliveries, "reason": str(exc)},
            )
            raise
        if isinstance(check, str):
            result = invalid_definition_result(request, check, settings, deliveries)
        else:
            result = executor(check, request, deliveries)
        publish_result(result, settings)
    except Exception:
        if on_job_failure is not None:
            on_job_failure()
        raise
    log_run(result)
    return result

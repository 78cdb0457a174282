"""Check retries (a check that failed, not a job): Checkly's strategies.

A retry is a new run request, delayed by SQS itself (``DelaySeconds``), never by
Celery's countdown, which would hold the message unacknowledged in worker memory past
its visibility timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.definitions.models import Check, RetryPolicy
from app.execution.outcome import CONFIG, NETWORK_KINDS
from app.execution.runs import RunResult

SQS_MAX_DELAY = 900


def backoff_seconds(policy: RetryPolicy, retry_number: int) -> float:
    """Delay before retry ``retry_number`` (1 = the first retry)."""
    base = policy.base_backoff
    if policy.strategy == "fixed":
        return base
    if policy.strategy == "linear":
        return base * retry_number
    if policy.strategy == "exponential":
        return base * float(1 << (retry_number - 1))
    return 0.0


@dataclass(frozen=True)
class RetryDecision:
    attempt: int
    delay_seconds: float
    location: str


def next_location(check: Check, current: str) -> str:
    """The location after ``current`` in the check's list, for ``same_region: false``."""
    locations = check.locations
    if current not in locations or len(locations) < 2:
        return current
    return locations[(locations.index(current) + 1) % len(locations)]


def decide_retry(check: Check, result: RunResult, now: datetime) -> RetryDecision | None:
    """The retry to schedule after ``result``, or None if this attempt is the last."""
    policy = check.retry
    if result.status != "failed" or policy.strategy == "none":
        return None
    if result.error_kind == CONFIG:
        return None  # the same definition fails the same way on every attempt
    retries_done = result.attempt - 1
    if retries_done >= policy.max_retries:
        return None
    if policy.network_only and result.error_kind not in NETWORK_KINDS:
        return None
    delay = min(float(SQS_MAX_DELAY), backoff_seconds(policy, retries_done + 1))
    # max_duration bounds the whole sequence, from the first attempt's scheduled slot.
    if (now - result.scheduled_at).total_seconds() + delay > policy.max_duration:
        return None
    location = result.location if policy.same_region else next_location(check, result.location)
    return RetryDecision(attempt=result.attempt + 1, delay_seconds=delay, location=location)

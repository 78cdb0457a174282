"""Queue names: every SQS queue synmon touches is named here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from config.settings import Settings

Kind = Literal["http", "browser"]
KINDS: tuple[Kind, ...] = ("http", "browser")
Role = Literal["run", "results", "dispatch"]
DLQ_SUFFIX = "-dlq"


def queue_name(
    settings: Settings,
    role: Role,
    location: str | None = None,
    kind: Kind | None = None,
    *,
    dead_letter: bool = False,
) -> str:
    """``<prefix>-<env>-run-<location>-<kind>``, ``<prefix>-<env>-results``, ... (+ ``-dlq``)."""
    base = f"{settings.sqs_queue_prefix}-{settings.env}-{role}"
    if role == "run":
        if location is None or kind is None:
            raise ValueError("a run queue needs a location and a kind")
        base = f"{base}-{location}-{kind}"
    elif location is not None or kind is not None:
        raise ValueError(f"the {role} queue has no location or kind")
    return base + DLQ_SUFFIX if dead_letter else base


def queue_region(settings: Settings, name: str) -> str:
    """The AWS region a queue lives in: its location's, for run queues of regional
    installations; ``SYNMON_SQS_REGION`` for everything else."""
    run_prefix = f"{settings.sqs_queue_prefix}-{settings.env}-run-"
    if settings.sqs_regional_queues and name.startswith(run_prefix):
        rest = name[len(run_prefix) :].removesuffix(DLQ_SUFFIX)
        for kind in KINDS:
            if rest.endswith(f"-{kind}"):
                return rest[: -len(kind) - 1]
    return settings.sqs_region


@dataclass(frozen=True)
class QueueSpec:
    name: str
    dead_letter: str
    visibility_timeout: int
    max_receive_count: int


def max_check_seconds(settings: Settings, kind: Kind) -> float:
    return settings.http_max_timeout if kind == "http" else settings.browser_max_timeout


def visibility_timeout(settings: Settings, role: Role, kind: Kind | None = None) -> int:
    """Longer than the longest job the queue serves, so a live job is never redelivered.

    A run queue serves checks of one kind, whose timeout is capped by the kind's maximum;
    ingest and dispatch handle a batch in well under the margin.
    """
    if role == "run" and kind is not None:
        return int(max_check_seconds(settings, kind)) + settings.sqs_visibility_margin
    return settings.sqs_visibility_margin * 2


def max_receive_count(settings: Settings, role: Role) -> int:
    """Deliveries before SQS moves a message to its dead-letter queue.

    Results get a few more: ingest holds its batch (and receives nothing) while Postgres
    is down, but a crash or a restart of ingest itself costs the messages it held one
    delivery, and a result must not go to the DLQ because of a bad afternoon.
    """
    if role == "results":
        return max(5, settings.sqs_max_receive_count)
    return settings.sqs_max_receive_count


def all_queues(settings: Settings, locations: tuple[str, ...] | None = None) -> list[QueueSpec]:
    """Every queue of this environment, each with its dead-letter queue."""
    specs: list[QueueSpec] = []
    for location in locations or settings.locations:
        for kind in KINDS:
            specs.append(
                QueueSpec(
                    queue_name(settings, "run", location, kind),
                    queue_name(settings, "run", location, kind, dead_letter=True),
                    visibility_timeout(settings, "run", kind),
                    max_receive_count(settings, "run"),
                )
            )
    roles: tuple[Role, ...] = ("results", "dispatch")
    for role in roles:
        specs.append(
            QueueSpec(
                queue_name(settings, role),
                queue_name(settings, role, dead_letter=True),
                visibility_timeout(settings, role),
                max_receive_count(settings, role),
            )
        )
    return specs

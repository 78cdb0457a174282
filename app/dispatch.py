"""The dispatcher: due checks -> run requests on SQS, exactly one per slot and location.

Any number of dispatchers may run at once (two beats overlap during a deploy): each
selects due checks with ``FOR UPDATE SKIP LOCKED``, so a check is taken by one of them,
and moves its ``next_run_at`` forward in the same transaction that sends its run
requests. If sending fails the transaction rolls back and the next tick tries again; if
the process dies after sending and before committing, the slot is sent again under the
same run id and ingest keeps one result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.messages import RunRequest, encode_run_request, scheduled_run_id
from app.metrics import DispatchedRun, record_dispatched
from app.schedule import advance
from app.sqs import BatchSender, Outgoing, celery_task_body
from app.storage.models import CheckRow
from config.celery import RUN_TASKS
from config.queues import Kind, max_check_seconds, queue_name
from config.settings import Settings

log = logging.getLogger("synmon.dispatch")

# At most this many rounds of ``batch_size`` checks per tick, so one tick cannot run
# forever when the backlog is enormous; the next tick continues.
MAX_ROUNDS_PER_TICK = 50


@dataclass
class DispatchReport:
    checks: int = 0
    runs: list[DispatchedRun] = field(default_factory=list)

    def add(self, other: DispatchReport) -> None:
        self.checks += other.checks
        self.runs.extend(other.runs)


def locations_for(row: CheckRow) -> list[str]:
    """Every location (parallel) or the next one in turn (round-robin)."""
    if not row.locations:
        return []
    if row.run_mode == "round-robin":
        location = row.locations[row.rr_cursor % len(row.locations)]
        row.rr_cursor = (row.rr_cursor + 1) % len(row.locations)
        return [location]
    return list(row.locations)


def time_limits(settings: Settings, kind: Kind) -> tuple[float, float]:
    """Celery's (hard, soft) limits: a backstop well past the check's own timeout."""
    longest = max_check_seconds(settings, kind)
    return longest + settings.sqs_visibility_margin - 2, longest + 5


def run_request_message(
    request: RunRequest, settings: Settings, delay_seconds: int = 0
) -> Outgoing:
    kind: Kind = "browser" if request.kind == "browser" else "http"
    queue = queue_name(settings, "run", request.location, kind)
    body = celery_task_body(
        RUN_TASKS[kind],
        [encode_run_request(request, settings.message_version)],
        queue,
        task_id=str(request.run_id),
        time_limits=time_limits(settings, kind),
    )
    return Outgoing(queue, body, delay_seconds)


Send = Callable[[Sequence[Outgoing]], Any]


def dispatch_round(
    session: Session, settings: Settings, send: Send, now: datetime, limit: int
) -> DispatchReport:
    """One transaction: lock up to ``limit`` due checks, send their runs, advance them."""
    report = DispatchReport()
    query = (
        select(CheckRow)
        .where(CheckRow.enabled.is_(True), CheckRow.next_run_at <= now)
        .order_by(CheckRow.next_run_at)
        .limit(limit)
    )
    if not settings.sqlite:
        query = query.with_for_update(skip_locked=True)
    rows = session.scalars(query).all()
    outgoing: list[Outgoing] = []
    for row in rows:
        slot, following = advance(row.next_run_at, row.frequency_s, now)
        for location in locations_for(row):
            request = RunRequest(
                run_id=scheduled_run_id(row.id, location, slot),
                check=row.definition,
                location=location,
                scheduled_at=slot,
                dispatched_at=now,
            )
            outgoing.append(run_request_message(request, settings))
            report.runs.append(DispatchedRun(location, row.kind, (now - slot).total_seconds()))
        row.next_run_at = following
        report.checks += 1
    if outgoing:
        send(outgoing)
    return report


def dispatch_due(
    session_factory: sessionmaker[Session],
    settings: Settings,
    send: Send | None = None,
    now: Callable[[], datetime] | None = None,
) -> DispatchReport:
    """Dispatch everything due now, in rounds of ``dispatch_batch_size`` checks."""
    send = send or BatchSender(settings).send
    clock = now or (lambda: datetime.now(UTC))
    total = DispatchReport()
    for _ in range(MAX_ROUNDS_PER_TICK):
        with session_factory.begin() as session:
            report = dispatch_round(session, settings, send, clock(), settings.dispatch_batch_size)
        record_dispatched(settings, report.runs)
        total.add(report)
        if report.checks < settings.dispatch_batch_size:
            break
    if total.runs:
        log.info(
            "dispatched %d run(s) of %d check(s)",
            len(total.runs),
            total.checks,
            extra={
                "runs": len(total.runs),
                "checks": total.checks,
                "max_lag_s": round(max(r.lag_s for r in total.runs), 3),
            },
        )
    return total

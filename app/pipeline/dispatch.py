"""The dispatcher: due checks -> run requests on SQS, exactly one per slot and location.

Any number of dispatchers may run at once (two beats overlap during a deploy): each
selects due checks with ``FOR UPDATE SKIP LOCKED``, so a check is taken by one of them,
and moves its ``next_run_at`` forward in the same transaction that sends its run
requests. If sending fails the transaction rolls back and the next tick tries again; if
the process dies after sending and before committing, the slot is sent again under the
same run id and ingest keeps one result.

A run request that SQS refuses for its content (too long for its queue, or any entry SQS
reports as the sender's fault; bodies are base64, so characters SQS refuses cannot occur)
would be refused again on every tick, so it is set aside instead: logged with its check
id (never its body, which carries the check's definition), counted in
``synmon_refused_runs_total``, and its check advances to the next slot like the others.
The checks beside it in the tick are neither rolled back nor delayed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, cast, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from app.execution.outcome import invalid_definition_result
from app.execution.runs import RunRequest
from app.ops.metrics import DispatchedRun, RefusedRun, record_dispatched, record_refused
from app.pipeline.queues import Kind, max_check_seconds, queue_name
from app.pipeline.schedule import advance, scheduled_run_id
from app.pipeline.sqs import BatchSender, Outgoing, Refused, SendReport, celery_task_body
from app.pipeline.wire import result_body, run_request_json
from app.storage.bulk import is_postgres
from app.storage.models import CheckRow
from config.celery import RUN_TASKS
from config.settings import Settings

log = logging.getLogger("synmon.dispatch")

# At most this many rounds of ``batch_size`` checks per tick, so one tick cannot run
# forever when the backlog is enormous; the next tick continues.
MAX_ROUNDS_PER_TICK = 50


@dataclass
class DispatchReport:
    checks: int = 0
    runs: list[DispatchedRun] = field(default_factory=list)
    refused: list[RefusedRun] = field(default_factory=list)

    def add(self, other: DispatchReport) -> None:
        self.checks += other.checks
        self.runs.extend(other.runs)
        self.refused.extend(other.refused)


def locations_for(locations: list[str], run_mode: str, cursor: int) -> tuple[list[str], int]:
    """(locations to run in, next cursor): every location (parallel) or the next one in
    turn (round-robin)."""
    if not locations:
        return [], cursor
    if run_mode == "round-robin":
        return [locations[cursor % len(locations)]], (cursor + 1) % len(locations)
    return list(locations), cursor


def time_limits(settings: Settings, kind: Kind) -> tuple[float, float]:
    """Celery's (hard, soft) limits: a backstop well past the check's own timeout."""
    longest = max_check_seconds(settings, kind)
    return longest + settings.sqs_visibility_margin - 2, longest + 5


def run_request_message(
    request: RunRequest, settings: Settings, delay_seconds: int = 0, check_json: str | None = None
) -> Outgoing:
    """The SQS message of a run request. ``check_json``: the definition as stored, when
    the caller has it as text (the dispatcher does), instead of ``request.check``."""
    kind: Kind = "browser" if request.kind == "browser" else "http"
    queue = queue_name(settings, "run", request.location, kind)
    body = celery_task_body(
        RUN_TASKS[kind],
        run_request_json(request, settings.message_version, check_json),
        queue,
        task_id=str(request.run_id),
        time_limits=time_limits(settings, kind),
    )
    return Outgoing(queue, body, delay_seconds)


# Raises when nothing may count as sent (the round rolls back); returns what SQS
# refused for its content, if it can tell.
Send = Callable[[Sequence[Outgoing]], SendReport | Any]


DUE_COLUMNS = (
    CheckRow.id,
    CheckRow.kind,
    # As text: spliced into the messages without being decoded and encoded again.
    cast(CheckRow.definition, Text).label("definition"),
    CheckRow.frequency_s,
    CheckRow.locations,
    CheckRow.run_mode,
    CheckRow.rr_cursor,
    CheckRow.next_run_at,
)


def advance_rows(session: Session, advanced: list[dict[str, Any]]) -> None:
    """Write the new next_run_at (and round-robin cursor) of the dispatched checks.

    On Postgres in one statement: an UPDATE per row would cost a round trip each, which
    was half the dispatcher's time.
    """
    if not advanced:
        return
    if is_postgres(session):
        session.execute(
            text(
                "UPDATE checks SET next_run_at = data.next_run_at, rr_cursor = data.rr_cursor "
                "FROM (SELECT unnest(CAST(:ids AS varchar[])) AS id, "
                "unnest(CAST(:nexts AS timestamptz[])) AS next_run_at, "
                "unnest(CAST(:cursors AS integer[])) AS rr_cursor) AS data "
                "WHERE checks.id = data.id"
            ),
            {
                "ids": [a["id"] for a in advanced],
                "nexts": [a["next_run_at"] for a in advanced],
                "cursors": [a["rr_cursor"] for a in advanced],
            },
        )
    else:
        session.execute(update(CheckRow), advanced)


def unsent_results(
    refused: Sequence[tuple[RunRequest, Refused]], settings: Settings
) -> list[Outgoing]:
    """A failed result (kind ``config``) for each run whose request SQS refused to carry.

    Sent to the results queue as a worker would: the run ends as one stored result, and
    the check's state and alerts see that it cannot run as defined.
    """
    queue = queue_name(settings, "results")
    return [
        Outgoing(
            queue,
            result_body(
                invalid_definition_result(
                    request,
                    f"SQS refused this run's request ({refusal.code}: {refusal.reason}): "
                    "the check's definition cannot travel as it is; fix it and run synmon sync",
                    settings,
                    1,
                ),
                settings.message_version,
            ),
        )
        for request, refusal in refused
    ]


def dispatch_round(
    session: Session, settings: Settings, send: Send, now: datetime, limit: int
) -> DispatchReport:
    """One transaction: lock up to ``limit`` due checks, send their runs, advance them."""
    report = DispatchReport()
    query = (
        select(*DUE_COLUMNS)
        .where(CheckRow.enabled.is_(True), CheckRow.next_run_at <= now)
        .order_by(CheckRow.next_run_at)
        .limit(limit)
    )
    if not settings.sqlite:
        query = query.with_for_update(skip_locked=True)
    outgoing: list[Outgoing] = []
    # id(message) -> (its request, the run it stands for), to name what SQS refuses.
    origins: dict[int, tuple[RunRequest, DispatchedRun]] = {}
    advanced: list[dict[str, Any]] = []
    for (
        check_id,
        kind,
        definition,
        frequency,
        locations,
        run_mode,
        cursor,
        next_run_at,
    ) in session.execute(query):
        slot, following = advance(next_run_at, frequency, now)
        targets, next_cursor = locations_for(locations, run_mode, cursor)
        for location in targets:
            request = RunRequest(
                run_id=scheduled_run_id(check_id, location, slot),
                check={"id": check_id, "type": kind},  # the full definition is check_json
                location=location,
                scheduled_at=slot,
                dispatched_at=now,
            )
            message = run_request_message(request, settings, check_json=definition)
            run = DispatchedRun(location, kind, (now - slot).total_seconds())
            outgoing.append(message)
            origins[id(message)] = (request, run)
            report.runs.append(run)
        advanced.append({"id": check_id, "next_run_at": following, "rr_cursor": next_cursor})
        report.checks += 1
    if outgoing:
        sent = send(outgoing)
        if isinstance(sent, SendReport) and sent.refused:
            refused = [(origins[id(r.message)][0], r) for r in sent.refused]
            for refusal in sent.refused:
                request, run = origins[id(refusal.message)]
                check_id = str(request.check["id"])
                report.runs.remove(run)
                report.refused.append(RefusedRun(run.location, run.kind, refusal.code))
                log.warning(
                    "run request of check %s for %s refused by SQS (%s: %s); "
                    "set aside as a failed result; the check runs again at its next slot",
                    check_id,
                    run.location,
                    refusal.code,
                    refusal.reason,
                    extra={"check_id": check_id, "location": run.location, "code": refusal.code},
                )
            send(unsent_results(refused, settings))
    # Refused checks advance too: the same definition would be refused on every tick.
    advance_rows(session, advanced)
    return report


def dispatch_due(
    session_factory: sessionmaker[Session],
    settings: Settings,
    send: Send | None = None,
    now: Callable[[], datetime] | None = None,
) -> DispatchReport:
    """Dispatch everything due now, in rounds of ``dispatch_batch_size`` checks."""
    send = send or BatchSender(settings).deliver
    clock = now or (lambda: datetime.now(UTC))
    total = DispatchReport()
    for _ in range(MAX_ROUNDS_PER_TICK):
        with session_factory.begin() as session:
            report = dispatch_round(session, settings, send, clock(), settings.dispatch_batch_size)
        record_dispatched(settings, report.runs)
        record_refused(settings, report.refused)
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

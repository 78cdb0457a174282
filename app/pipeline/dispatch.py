"""The dispatcher: due checks -> run requests on SQS, exactly one per slot and location.

Any number of dispatchers may run at once (two beats overlap during a deploy): each
selects due checks with ``FOR UPDATE SKIP LOCKED``, so a check is taken by one of them,
and moves its ``next_run_at`` forward in the same transaction that sends its run
requests. If sending fails the transaction rolls back and the next tick tries again; if
the process dies after sending and before committing, the slot is sent again under the
same run id and ingest keeps one result.

Within a round the order is: select and lock, compute the next slots, start the UPDATE
that advances them (on the transaction's connection, from a helper thread, while this
thread encodes the messages), wait for it, send every message (several
``SendMessageBatch`` calls in flight, each call's failure waited out with the others),
and commit only then. The UPDATE is issued before the sends, but nothing of it is
visible before the commit, which follows the last successful send: a check is never
advanced without its runs on SQS (nothing lost), and a round that fails anywhere sends
the same run ids again (nothing stored twice).

A run request that SQS refuses for its content (too long for its queue, or any entry SQS
reports as the sender's fault; bodies are base64, so characters SQS refuses cannot occur)
would be refused again on every tick, so it is set aside instead: logged with its check
id (never its body, which carries the check's definition), counted in
``synmon_refused_runs_total``, and its check advances to the next slot like the others.
The checks beside it in the tick are neither rolled back nor delayed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, cast, exists, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from app.execution.outcome import invalid_definition_result
from app.execution.runs import RunRequest
from app.ops.metrics import DispatchedRun, RefusedRun, record_dispatched, record_refused
from app.pipeline.queues import Kind, max_check_seconds, queue_name
from app.pipeline.schedule import advance, scheduled_run_id_text, slot_text
from app.pipeline.sqs import (
    BatchSender,
    CeleryBodyTemplate,
    Outgoing,
    Refused,
    SendReport,
    Splice,
    celery_task_body,
)
from app.pipeline.wire import result_body, run_request_json
from app.storage.accounts import CheckPauseRow
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
    paused: int = 0  # due checks skipped because they are paused

    def add(self, other: DispatchReport) -> None:
        self.checks += other.checks
        self.paused += other.paused
        self.runs.extend(other.runs)
        self.refused.extend(other.refused)


def location_list(stored: str | None) -> list[str]:
    """A check's stored locations (JSON text) as a list of names; anything else as none:
    a row that is not what sync writes dispatches nothing rather than stopping the tick."""
    try:
        value = json.loads(stored) if stored else []
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        log.error("stored locations are not a list of names: %.100r", stored)
        return []
    return value


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
    # As text too: most checks share a few lists, each parsed once a round.
    cast(CheckRow.locations, Text).label("locations"),
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


ADVANCE_SQL = (
    "UPDATE checks SET next_run_at = data.next_run_at, rr_cursor = data.rr_cursor "
    "FROM (SELECT unnest(%(ids)s::varchar[]) AS id, "
    "unnest(%(nexts)s::timestamptz[]) AS next_run_at, "
    "unnest(%(cursors)s::integer[]) AS rr_cursor) AS data "
    "WHERE checks.id = data.id"
)
_advancers: dict[int, ThreadPoolExecutor] = {}
_advancer_lock = threading.Lock()


def _advancer() -> ThreadPoolExecutor:
    """This process's helper thread (per process: a forked child inherits the executor
    but not its thread, and would wait on it forever)."""
    with _advancer_lock:
        pid = os.getpid()
        if pid not in _advancers:
            _advancers[pid] = ThreadPoolExecutor(1, thread_name_prefix="synmon-advance")
        return _advancers[pid]


def start_advance(session: Session, advanced: list[dict[str, Any]]) -> Callable[[], None]:
    """``advance_rows`` begun now, finished by the function it returns (which raises what
    the statement raised). Call it before anything else uses the session.

    On Postgres the UPDATE runs on the transaction's own connection from a helper
    thread, while this one encodes the round's messages: psycopg2 lets go of the GIL
    while Postgres works, and the statement's time on the server was a fifth of a
    round. It is still the transaction's statement: it commits with the sends or rolls
    back with them. Elsewhere (SQLite) it runs at once.
    """
    if not advanced or not is_postgres(session):
        advance_rows(session, advanced)
        return lambda: None
    dbapi = session.connection().connection.dbapi_connection
    params = {
        "ids": [a["id"] for a in advanced],
        "nexts": [a["next_run_at"] for a in advanced],
        "cursors": [a["rr_cursor"] for a in advanced],
    }

    def execute() -> None:
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            cursor.execute(ADVANCE_SQL, params)
            if cursor.rowcount != len(advanced):
                # The rows are locked by this transaction: none can have gone.
                raise RuntimeError(f"advanced {cursor.rowcount} of {len(advanced)} checks")
        finally:
            cursor.close()

    return _advancer().submit(execute).result


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


class RoundEncoder:
    """The run request messages of one round, written from a template per location and
    kind instead of encoding each request in full.

    Within a round, the scheduled run requests of one location and kind differ only in
    their run id, their check's definition and their slot. The template is the request
    encoded by the general path (``run_request_message``'s) with markers in those three
    places, so the wire version's layout is followed whatever it is; the first message
    of each template is compared with the general path's, and a template that does not
    reproduce it exactly (or whose markers are not each found once) is not used: those
    messages take the general path. Encoding each request in full was most of the
    dispatcher's time.
    """

    _RUN_ID = uuid.UUID("5e5e5e5e-0000-4000-8000-5e5e5e5e5e5e")
    _SLOT = datetime(1901, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
    # Spliced raw, never through json.dumps, which escapes every NUL: it cannot occur
    # in the encoded request otherwise.
    _CHECK = "\x00check\x00"

    def __init__(self, settings: Settings, now: datetime) -> None:
        self.settings = settings
        self.now = now
        self._templates: dict[tuple[str, str], _Template | None] = {}

    def message(
        self,
        check_id: str,
        kind: str,
        location: str,
        slot: datetime,
        slot_iso: str,
        run_id: str,
        definition: str,
    ) -> Outgoing:
        key = (location, kind)
        if key not in self._templates:
            self._templates[key] = self._template(kind, location)
            template = self._templates[key]
            if template is not None:
                fast = template.argument(run_id, definition, slot_iso)
                slow = run_request_json(
                    self.request(check_id, kind, location, slot, uuid.UUID(run_id)),
                    self.settings.message_version,
                    definition,
                )
                if fast != slow:
                    log.warning("run request template of %s/%s disagrees; not used", location, kind)
                    self._templates[key] = template = None
        else:
            template = self._templates[key]
        if template is None:
            request = self.request(check_id, kind, location, slot, uuid.UUID(run_id))
            return run_request_message(request, self.settings, check_json=definition)
        return Outgoing(
            template.queue,
            template.body.fill(template.argument(run_id, definition, slot_iso), run_id),
        )

    def request(
        self, check_id: str, kind: str, location: str, slot: datetime, run_id: uuid.UUID
    ) -> RunRequest:
        return RunRequest(
            run_id=run_id,
            check={"id": check_id, "type": kind},  # the full definition is check_json
            location=location,
            scheduled_at=slot,
            dispatched_at=self.now,
        )

    def _template(self, kind: str, location: str) -> _Template | None:
        request = self.request("", kind, location, self._SLOT, self._RUN_ID)
        text = run_request_json(request, self.settings.message_version, self._CHECK)
        markers = (str(self._RUN_ID), self._CHECK, slot_text(self._SLOT))
        if any(text.count(marker) != 1 for marker in markers):
            return None
        wire_kind: Kind = "browser" if kind == "browser" else "http"
        queue = queue_name(self.settings, "run", location, wire_kind)
        body = CeleryBodyTemplate(
            RUN_TASKS[wire_kind], queue, time_limits(self.settings, wire_kind)
        )
        return _Template(queue, Splice(text, markers), body)


@dataclass(frozen=True)
class _Template:
    queue: str
    argument: Callable[[str, str, str], str]  # (run id, definition, slot) -> request JSON
    body: CeleryBodyTemplate


def dispatch_round(
    session: Session, settings: Settings, send: Send, now: datetime, limit: int
) -> DispatchReport:
    """One transaction: lock up to ``limit`` due checks, send their runs, advance them."""
    report = DispatchReport()
    # A paused check (web or API) keeps its slots moving without runs, so that resuming it
    # starts at its next slot instead of a burst of the ones it missed.
    paused = exists().where(CheckPauseRow.check_id == CheckRow.id).label("paused")
    query = (
        select(*DUE_COLUMNS, paused)
        .where(CheckRow.enabled.is_(True), CheckRow.next_run_at <= now)
        .order_by(CheckRow.next_run_at)
        .limit(limit)
    )
    if not settings.sqlite:
        query = query.with_for_update(skip_locked=True)
    encoder = RoundEncoder(settings, now)
    # Core, not the ORM: these are plain rows, and the ORM's row handling cost a tenth.
    rows = session.connection().execute(query).all()
    advanced: list[dict[str, Any]] = []
    planned: list[tuple[Any, datetime, list[str]]] = []
    parsed: dict[str, list[str]] = {}
    for row in rows:
        check_id, _, _, frequency, locations, run_mode, cursor, next_run_at, is_paused = row
        if (names := parsed.get(locations)) is None:
            names = parsed[locations] = location_list(locations)
        slot, following = advance(next_run_at, frequency, now)
        targets, next_cursor = locations_for(names, run_mode, cursor)
        if is_paused:
            report.paused += 1
            next_cursor = cursor
        else:
            planned.append((row, slot, targets))
        advanced.append({"id": check_id, "next_run_at": following, "rr_cursor": next_cursor})
    # Refused checks advance too: the same definition would be refused on every tick.
    finish_advance = start_advance(session, advanced)
    try:
        outgoing, origins = encode_round(report, encoder, planned)
    finally:
        finish_advance()
    if outgoing:
        sent = send(outgoing)
        if isinstance(sent, SendReport) and sent.refused:
            set_aside(report, sent.refused, outgoing, origins, encoder, send)
    return report


def encode_round(
    report: DispatchReport,
    encoder: RoundEncoder,
    planned: Sequence[tuple[Any, datetime, list[str]]],
) -> tuple[list[Outgoing], list[tuple[str, str, str, datetime, str]]]:
    """The run requests of a round's (row, slot, locations), and beside each message
    (check id, kind, location, slot, run id), to name what SQS refuses."""
    outgoing: list[Outgoing] = []
    # Beside each message: (check id, kind, location, slot, run id), to name what SQS refuses.
    origins: list[tuple[str, str, str, datetime, str]] = []
    runs = report.runs
    now = encoder.now
    for (check_id, kind, definition, *_), slot, targets in planned:
        slot_iso = slot_text(slot)
        lag = (now - slot).total_seconds()
        for location in targets:
            run_id = scheduled_run_id_text(check_id, location, slot_iso)
            outgoing.append(
                encoder.message(check_id, kind, location, slot, slot_iso, run_id, definition)
            )
            origins.append((check_id, kind, location, slot, run_id))
            runs.append(DispatchedRun(location, kind, lag))
        report.checks += 1
    return outgoing, origins


def set_aside(
    report: DispatchReport,
    refusals: Sequence[Refused],
    outgoing: Sequence[Outgoing],
    origins: Sequence[tuple[str, str, str, datetime, str]],
    encoder: RoundEncoder,
    send: Send,
) -> None:
    """Log, count and end by a failed result each run whose request SQS refused."""
    index_of = {id(message): index for index, message in enumerate(outgoing)}
    refused: list[tuple[RunRequest, Refused]] = []
    gone: set[int] = set()
    for refusal in refusals:
        index = index_of[id(refusal.message)]
        check_id, kind, location, slot, run_id = origins[index]
        gone.add(index)
        refused.append(
            (encoder.request(check_id, kind, location, slot, uuid.UUID(run_id)), refusal)
        )
        report.refused.append(RefusedRun(location, kind, refusal.code))
        log.warning(
            "run request of check %s for %s refused by SQS (%s: %s); "
            "set aside as a failed result; the check runs again at its next slot",
            check_id,
            location,
            refusal.code,
            refusal.reason,
            extra={"check_id": check_id, "location": location, "code": refusal.code},
        )
    report.runs[:] = [run for index, run in enumerate(report.runs) if index not in gone]
    send(unsent_results(refused, encoder.settings))


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

"""Ingest: results queue -> Postgres, once each, with the check state and its follow-ups.

A batch of results is stored in one transaction together with everything it causes:
the check state, the notifications to send and the retries to schedule (both as
outbox rows). Only after the commit are the messages deleted from SQS. So a crash at
any point loses nothing (undeleted messages come back) and doubles nothing (a result
already stored is recognised by its run id and causes nothing a second time).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.definitions.models import Check
from app.execution.runs import RunRequest, RunResult, clipped_fields
from app.ops.metrics import RefusedRun, StoredRun, record_refused, record_stored
from app.pipeline.check_cache import CheckCache
from app.pipeline.dispatch import run_request_message, unsent_results
from app.pipeline.incidents import IncidentChange, apply_incident_changes, incident_change
from app.pipeline.queues import queue_name
from app.pipeline.retries import decide_retry
from app.pipeline.rollups import add_to_rollups
from app.pipeline.schedule import retry_run_id
from app.pipeline.sqs import BatchSender, Outgoing, SendReport, client_for, queue_urls
from app.pipeline.state import CheckState, LocationState, apply_to_location, derive
from app.pipeline.state_store import (
    Pair,
    location_states,
    lock_states,
    newest_final_runs,
    save_states,
)
from app.pipeline.wire import (
    MessageError,
    decode_result,
    decode_run_request,
    encode_run_request,
    parse_body,
)
from app.storage.bulk import insert_ignoring_conflicts, is_postgres, table_of
from app.storage.models import RUN_KEY, CheckRunRow, NotificationRow, OutboxRow
from config.settings import Settings

log = logging.getLogger("synmon.ingest")


@dataclass
class StoreReport:
    inserted: int = 0
    duplicates: int = 0
    retries: int = 0
    notifications: int = 0
    stored: list[StoredRun] = field(default_factory=list)  # the results new to the database

    def add(self, other: StoreReport) -> None:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.retries += other.retries
        self.notifications += other.notifications
        self.stored.extend(other.stored)


def _length(column: str) -> int:
    kind = CheckRunRow.__table__.c[column].type
    if not isinstance(kind, String) or kind.length is None:
        raise TypeError(f"check_runs.{column} is not text of a bounded length: cannot clip it")
    return kind.length


# The clipped fields (see app.execution.runs), each with the length its column holds.
CLIPPED = {name: _length(name) for name in clipped_fields()}


_FIELD_NAMES: dict[type[RunResult], tuple[str, ...]] = {}


def _field_names(kind: type[RunResult]) -> tuple[str, ...]:
    # Looked up once per class: dataclasses.fields() for each result was half of run_row.
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


def run_row(result: RunResult, final: bool, now: datetime) -> dict[str, Any]:
    """The row of ``runs`` that stores ``result``: a column for each of its fields."""
    values = vars(result)
    row = {name: values[name] for name in _field_names(type(result))}
    for name, length in CLIPPED.items():
        row[name] = row[name][:length]
    # A row always names its root, so that all attempts of a run share one value to query.
    row["root_run_id"] = result.root
    return {**row, "final": final, "ingested_at": now}


RUNS = table_of(CheckRunRow)


def _notification_payload(
    check: Check, result: RunResult, event: str, failing_locations: list[str]
) -> dict[str, Any]:
    return {
        "event": event,
        "check_id": check.id,
        "check_name": check.name or check.id,
        "status": result.status,
        "location": result.location,
        "failing_locations": failing_locations,
        "run_id": str(result.run_id),
        "started_at": result.started_at.isoformat(),
        "duration_ms": result.duration_ms,
        "error": result.error,
        "attempt": result.attempt,
    }


@dataclass
class _Guard:
    """What deciding the states needs, gathered before this batch's runs are stored."""

    states: dict[str, CheckState]  # locked until the transaction ends
    # Every stored location state of those checks, by check and location (the check's
    # lock covers them).
    locations: dict[str, dict[str, LocationState]]
    # For the (check, location) pairs that a result of the batch could move: when their
    # newest stored final run started (None if they have none).
    newest: dict[Pair, datetime | None]


def _guard(
    session: Session, finals: list[RunResult], known: dict[str, Check], now: datetime
) -> _Guard:
    """Lock the states of the checks of ``finals`` and look up what could move them.

    Before this batch's runs are inserted, so that the newest stored run is another
    transaction's: every transaction takes the locks before it inserts its runs, so all
    runs of these checks stored before ours are committed by now, and visible.
    """
    states = lock_states(session, {r.check_id for r in finals}, now)
    locations = location_states(session, {(r.check_id, r.location) for r in finals}, states, now)
    # A result can move a state only if it would move its location's stored state on its
    # own: until one does, the states stay as stored. Only those need the newest run.
    movable = {(r.check_id, r.location) for r in finals if _moves(locations[_pair(r)], r)}
    newest = newest_final_runs(session, movable)
    by_check: dict[str, dict[str, LocationState]] = {}
    for (check_id, location), state in locations.items():
        by_check.setdefault(check_id, {})[location] = state
    return _Guard(states, by_check, {pair: newest.get(pair) for pair in movable})


def _pair(result: RunResult) -> Pair:
    return (result.check_id, result.location)


def _move_states(
    session: Session,
    finals: list[RunResult],
    guard: _Guard,
    known: dict[str, Check],
    now: datetime,
) -> list[dict[str, Any]]:
    """Apply the final results (oldest first) to their locations' states and derive their
    checks' verdicts; the notification rows they cause. See app.pipeline.state_store for why most
    results write nothing."""
    notifications: list[dict[str, Any]] = []
    incidents: list[IncidentChange] = []
    moved: dict[str, CheckState] = {}
    moved_locations: dict[Pair, LocationState] = {}
    for result in finals:
        pair = _pair(result)
        locations = guard.locations[result.check_id]
        location = locations[result.location]
        if pair in guard.newest:
            bounds = (location.last_run_at, guard.newest[pair])
            if any(bound is not None and result.started_at < bound for bound in bounds):
                continue  # a late result of an older run does not move the state back
            after = location.copy()
            apply_to_location(after, result)
            if after.verdict != location.verdict:
                locations[result.location] = moved_locations[pair] = after
        # Derived with every result, not only those that move their location: a sync that
        # removed the location that was down, or raised the quorum, ends an alert here.
        definition = known.get(result.check_id)
        state = guard.states[result.check_id]
        derived = state.copy()
        events = derive(derived, locations, definition, result)
        if derived.verdict == state.verdict:
            continue  # nothing to write: the row keeps naming the run that last moved it
        guard.states[result.check_id] = moved[result.check_id] = derived
        failing = sorted(name for name, s in locations.items() if s.status == "failing")
        change = incident_change(state, derived, result.started_at, result.run_id, failing)
        if change is not None:
            incidents.append(change)
        for event in events:
            assert definition is not None
            payload = _notification_payload(definition, result, event.kind, failing)
            for channel in event.channels:
                notifications.append(
                    {
                        "check_id": result.check_id,
                        "channel_id": channel,
                        "event": event.kind,
                        "run_id": result.run_id,
                        "payload": payload,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                )
    save_states(session, moved.values(), moved_locations.values(), now)
    apply_incident_changes(session, incidents)
    return notifications


def _moves(location: LocationState, result: RunResult) -> bool:
    trial = location.copy()
    apply_to_location(trial, result)
    return trial.verdict != location.verdict


def store_results(
    session: Session,
    results: Sequence[RunResult],
    settings: Settings,
    checks: CheckCache,
    now: datetime | None = None,
) -> StoreReport:
    """Store ``results`` and their consequences inside the caller's transaction."""
    now = now or datetime.now(UTC)
    report = StoreReport()
    unique: dict[uuid.UUID, RunResult] = {}
    for result in results:
        unique.setdefault(result.run_id, result)
    report.duplicates = len(results) - len(unique)
    if not unique:
        return report
    known = checks.load(session, {r.check_id for r in unique.values()})
    decisions = {
        run_id: (decide_retry(known[r.check_id], r, now) if r.check_id in known else None)
        for run_id, r in unique.items()
    }
    guard = _guard(session, [r for r in unique.values() if decisions[r.run_id] is None], known, now)
    rows = [run_row(r, decisions[run_id] is None, now) for run_id, r in unique.items()]
    skipped = insert_ignoring_conflicts(session, RUNS, rows, RUN_KEY, report_skipped="run_id")
    for run_id in skipped:  # stored before: by an earlier delivery of the same result
        del unique[uuid.UUID(run_id)]
    report.inserted = len(unique)
    report.duplicates += len(skipped)
    fresh = sorted(unique.values(), key=lambda r: r.started_at)
    report.stored = [
        StoredRun(
            r.status,
            r.location,
            r.kind,
            r.duration_ms / 1000,
            (now - r.finished_at).total_seconds(),
        )
        for r in fresh
    ]

    outbox: list[dict[str, Any]] = []
    for result in fresh:
        decision = decisions[result.run_id]
        if decision is None:
            continue
        check = known[result.check_id]
        retry = RunRequest(
            run_id=retry_run_id(result.root, decision.attempt),
            check=check.snapshot(),
            location=decision.location,
            scheduled_at=result.scheduled_at,
            attempt=decision.attempt,
            root_run_id=result.root,
            trigger="retry",
            dispatched_at=now,
        )
        outbox.append(
            {
                "run_id": retry.run_id,
                "queue": run_request_message(retry, settings).queue,
                "body": encode_run_request(retry, settings.message_version),
                "not_before": now + timedelta(seconds=decision.delay_seconds),
                "created_at": now,
            }
        )
    if outbox:
        insert_ignoring_conflicts(session, table_of(OutboxRow), outbox, ["run_id"])
        report.retries = len(outbox)

    finals = [r for r in fresh if decisions[r.run_id] is None]
    add_to_rollups(session, finals)
    notifications = _move_states(session, finals, guard, known, now)
    if notifications:
        insert_ignoring_conflicts(
            session, table_of(NotificationRow), notifications, ["run_id", "channel_id", "event"]
        )
        report.notifications = len(notifications)
    return report


def relay_outbox(
    session_factory: sessionmaker[Session],
    settings: Settings,
    send: Callable[[Sequence[Outgoing]], Any] | None = None,
    limit: int = 500,
) -> int:
    """Send the retries that committed transactions decided on; returns how many.

    A retry that SQS refuses for its content is set aside as the dispatcher sets aside
    a run request: logged, counted, and ended by a failed result of kind ``config``
    (sending it again would be refused again, and hold up every retry behind it).
    """
    send = send or BatchSender(settings).deliver
    now = datetime.now(UTC)
    with session_factory.begin() as session:
        query = (
            select(OutboxRow).where(OutboxRow.sent_at.is_(None)).order_by(OutboxRow.id).limit(limit)
        )
        if is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        rows = session.scalars(query).all()
        if not rows:
            return 0
        messages = []
        request_of: dict[int, RunRequest] = {}
        for row in rows:
            request = decode_run_request(row.body)
            delay = max(0, round((row.not_before - now).total_seconds()))
            messages.append(run_request_message(request, settings, delay_seconds=delay))
            request_of[id(messages[-1])] = request
        sent = send(messages)
        if isinstance(sent, SendReport) and sent.refused:
            refused = [(request_of[id(r.message)], r) for r in sent.refused]
            for request, refusal in refused:
                log.error(
                    "SQS refused a retry of %s for its content (%s: %s); set aside",
                    request.check.get("id"),
                    refusal.code,
                    refusal.reason,
                )
            record_refused(
                settings, [RefusedRun(r.location, r.kind, refusal.code) for r, refusal in refused]
            )
            send(unsent_results(refused, settings))
        session.execute(
            update(OutboxRow).where(OutboxRow.id.in_([r.id for r in rows])).values(sent_at=now)
        )
    return len(rows)


def _first_line(error: Exception) -> str:
    """The database's own message, without the statement and its parameters (results)."""
    original = getattr(error, "orig", None) or error
    return str(original).strip().splitlines()[0] if str(original).strip() else type(error).__name__


@dataclass
class Received:
    receipt: str
    body: str
    receive_count: int


def _poison_visibility(receive_count: int) -> int:
    """1, 2, 4, 8 s ...: a result no release can read goes to the DLQ in seconds."""
    return min(30, 1 << min(receive_count - 1, 5))


class Ingestor:
    """The ``synmon ingest`` loop: receive, store, relay follow-ups, delete."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = session_factory
        self.stop = stop or threading.Event()
        self.queue = queue_name(settings, "results")
        self.checks = CheckCache()
        self.last_success = time.monotonic()  # of a receive; for ``synmon health``

    def health(self) -> str:
        from app.ops.health import READY

        silent = time.monotonic() - self.last_success
        return READY if silent < self.settings.sqs_silence else "sqs-or-database-unavailable"

    @property
    def url(self) -> str:
        return queue_urls(self.settings)(self.queue)

    def receive(self) -> list[Received]:
        """Up to ``ingest_batch_size`` messages, gathered for at most about a second."""
        sqs = client_for(self.settings, self.queue)
        batch: list[Received] = []
        deadline = time.monotonic() + 1.0
        while len(batch) < self.settings.ingest_batch_size and not self.stop.is_set():
            response = sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0 if batch else self.settings.sqs_wait_time_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
            messages = response.get("Messages") or []
            batch.extend(
                Received(
                    m["ReceiptHandle"],
                    m["Body"],
                    int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
                )
                for m in messages
            )
            if len(messages) < 10 or time.monotonic() > deadline:
                break
        return batch

    def _reject_poison(self, poison: list[tuple[Received, str]]) -> None:
        sqs = client_for(self.settings, self.queue)
        for message, reason in poison:
            log.error(
                "rejected a result message (delivery %d): %s",
                message.receive_count,
                reason,
                extra={"queue": self.queue, "reason": reason},
            )
            try:
                sqs.change_message_visibility(
                    QueueUrl=self.url,
                    ReceiptHandle=message.receipt,
                    VisibilityTimeout=_poison_visibility(message.receive_count),
                )
            except Exception as exc:  # noqa: BLE001 - it comes back after its timeout anyway
                log.warning("could not change the visibility of a poison message: %s", exc)

    def _delete(self, messages: list[Received]) -> None:
        sqs = client_for(self.settings, self.queue)
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            try:
                response = sqs.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)
                    ],
                )
            except Exception as exc:  # noqa: BLE001 - stored already; redelivery is harmless
                # Stored already: when they come back, their run ids are recognised.
                log.warning("could not delete %d stored result message(s): %s", len(chunk), exc)
                continue
            if response.get("Failed"):
                log.warning("%d stored result message(s) not deleted", len(response["Failed"]))

    def _store(self, results: list[RunResult]) -> tuple[StoreReport, dict[int, str]]:
        """Store ``results``; the positions of those the database refused, with why.

        A result the database refuses for its content (a value too long, say) must not
        hold up the others: the batch is then stored one result at a time, and the
        refused ones go the way of every poison message, to the dead-letter queue.
        """
        try:
            return self._store_waiting(results), {}
        except (DataError, IntegrityError) as exc:
            if len(results) == 1:
                return StoreReport(), {0: _first_line(exc)}
            log.warning(
                "the database refused a batch (%s); storing it result by result", _first_line(exc)
            )
        report, refused = StoreReport(), {}
        for position, result in enumerate(results):
            try:
                report.add(self._store_waiting([result]))
            except (DataError, IntegrityError) as exc:
                refused[position] = _first_line(exc)
        return report, refused

    def _store_waiting(self, results: list[RunResult]) -> StoreReport:
        """Store, waiting out a database outage rather than receiving more meanwhile."""
        delay = 0.5
        while True:
            try:
                with self.sessions.begin() as session:
                    return store_results(session, results, self.settings, self.checks)
            except (DataError, IntegrityError):
                raise
            except (OperationalError, DBAPIError) as exc:
                if self.stop.is_set():
                    raise
                log.warning(
                    "database unavailable, holding %d result(s): %s", len(results), _first_line(exc)
                )
                self.stop.wait(delay)
                delay = min(5.0, delay * 2)

    def poll_once(self) -> int:
        messages = self.receive()
        self.last_success = time.monotonic()
        if not messages:
            return 0
        results: list[RunResult] = []
        good: list[Received] = []
        poison: list[tuple[Received, str]] = []
        for message in messages:
            try:
                results.append(decode_result(parse_body(message.body)))
                good.append(message)
            except MessageError as exc:
                poison.append((message, str(exc)))
        if results:
            report, refused = self._store(results)
            for position, why in refused.items():
                poison.append((good[position], f"the database refused the result: {why}"))
            if report.retries:
                relay_outbox(self.sessions, self.settings)
            self._delete([m for position, m in enumerate(good) if position not in refused])
            record_stored(self.settings, report.stored)
            log.debug("stored %d result(s), %d duplicate(s)", report.inserted, report.duplicates)
        if poison:
            self._reject_poison(poison)
        return len(messages)

    def run_forever(self) -> None:
        log.info("ingest consuming %s", self.queue)
        last_relay = 0.0
        failures = 0
        while not self.stop.is_set():
            try:
                self.poll_once()
                if time.monotonic() - last_relay > 5:
                    # Retries whose commit happened just before a crash are sent here.
                    relay_outbox(self.sessions, self.settings)
                    last_relay = time.monotonic()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the loop must outlive SQS and database outages
                failures += 1
                log.warning("ingest cycle failed (%s); retrying", exc)
                self.stop.wait(min(10.0, 0.5 * 2 ** min(failures, 5)))
        log.info("ingest stopped")

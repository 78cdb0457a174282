"""Ingest: results stored per second.

1. The storage call alone (``store_results``: idempotent insert, check state, outboxes)
   on batches of the configured size, against ``COPY`` of the same rows into a table of
   the same shape, the fastest way Postgres takes rows.
2. From a results queue already full (moto's SQS server), against a bare loop that
   receives and deletes the same number of messages without storing them.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text

from app.execution.runs import RunResult
from app.pipeline import ingest as ingest_module
from app.pipeline import rollups
from app.pipeline.check_cache import CheckCache
from app.pipeline.ingest import Ingestor, store_results
from app.pipeline.queues import queue_name
from app.pipeline.retention import maintain_partitions, partitions
from app.pipeline.sqs import BatchSender, Outgoing, client_for, create_queues, queue_urls
from app.pipeline.wire import result_body
from app.storage.db import engine_for, sessions
from app.storage.models import HOURLY_ROLLUPS, CheckRow, CheckRunRow
from bench.common import Figure, Size, WrongResult
from config.settings import Settings, load_settings
from tests.support.databases import postgres_database
from tests.support.processes import moto_server

SIZES = {"tiny": (2_000, 100), "full": (50_000, 500)}
CHECKS = 10_000  # results spread over many checks, as in a fleet: few meet in a batch
GOAL = 20_000.0


FAILING = 50  # one check in 50 fails every run: its state moves with each result


def results(count: int, since: datetime | None = None) -> list[RunResult]:
    """``count`` results, one a minute per check, from ``since``."""
    since = since or datetime.now(UTC)
    return [
        RunResult(
            run_id=uuid.uuid4(),
            check_id=f"c{i % CHECKS}",
            kind="http",
            location="eu-west-1",
            status="failed" if i % CHECKS % FAILING == 0 else "passed",
            error="connection refused" if i % CHECKS % FAILING == 0 else None,
            error_kind="network" if i % CHECKS % FAILING == 0 else None,
            scheduled_at=since + timedelta(minutes=i // CHECKS),
            started_at=since + timedelta(minutes=i // CHECKS),
            finished_at=since + timedelta(minutes=i // CHECKS, seconds=0.1234),
            duration_ms=123.4,
            timings={"dns_ms": 0.1, "connect_ms": 0.4, "total_ms": 123.4},
            assertions=[
                {
                    "source": "status_code",
                    "comparison": "equals",
                    "target": 200,
                    "actual": 200,
                    "passed": True,
                }
            ],
            response={
                "status_code": 200,
                "body_excerpt": "ok" * 100,
                "headers": {"Content-Type": "text/plain"},
            },
            worker_version="bench",
            worker_host="bench",
            trigger="schedule",
        )
        for i in range(count)
    ]


def seed_checks(database_url: str) -> None:
    now = datetime.now(UTC)
    definition = {
        "id": "x",
        "type": "http",
        "frequency": 60.0,
        "locations": ["eu-west-1"],
        "run_mode": "parallel",
        "enabled": True,
        "request": {"url": "https://example.com"},
    }
    with sessions(database_url).begin() as session:
        session.execute(
            insert(CheckRow),
            [
                {
                    "id": f"c{i}",
                    "name": f"c{i}",
                    "kind": "http",
                    "definition": {**definition, "id": f"c{i}"},
                    "definition_hash": str(i),
                    "frequency_s": 60.0,
                    "locations": ["eu-west-1"],
                    "run_mode": "parallel",
                    "enabled": True,
                    "next_run_at": now + timedelta(days=1),
                    "rr_cursor": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(CHECKS)
            ],
        )


FAILURES = "SELECT check_id, consecutive_failures FROM check_state WHERE status = 'failing'"


def warm_cache(database_url: str) -> CheckCache:
    """A running ingest process has seen every check already; so does the benchmark."""
    cache = CheckCache()
    with sessions(database_url).begin() as session:
        cache.load(session, {f"c{i}" for i in range(CHECKS)})
    return cache


def stored(database_url: str) -> int:
    with sessions(database_url)() as session:
        return int(session.scalar(select(func.count()).select_from(CheckRunRow)) or 0)


def copy_rate(database_url: str, batch: list[RunResult]) -> float:
    """COPY the same rows into an unlogged copy of runs (no indexes: COPY's best)."""
    columns = [
        "run_id",
        "root_run_id",
        "check_id",
        "location",
        "kind",
        "status",
        "attempt",
        "deliveries",
        "final",
        "scheduled_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "timings",
        "assertions",
        "error",
        "error_kind",
        "response",
        "artifacts",
        "worker_version",
        "worker_host",
        "message_version",
        "trigger",
        "ingested_at",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    now = datetime.now(UTC).isoformat()
    for r in batch:
        writer.writerow(
            [
                r.run_id,
                r.root,
                r.check_id,
                r.location,
                r.kind,
                r.status,
                r.attempt,
                r.deliveries,
                True,
                r.scheduled_at.isoformat(),
                r.started_at.isoformat(),
                r.finished_at.isoformat(),
                r.duration_ms,
                json.dumps(r.timings),
                json.dumps(r.assertions),
                r.error,
                r.error_kind,
                json.dumps(r.response),
                json.dumps(r.artifacts),
                r.worker_version,
                r.worker_host,
                r.message_version,
                r.trigger,
                now,
            ]
        )
    raw = engine_for(database_url).raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("CREATE UNLOGGED TABLE copy_target (LIKE runs INCLUDING DEFAULTS)")
        raw.commit()
        started = time.perf_counter()
        buffer.seek(0)
        cursor.copy_expert(
            f"COPY copy_target ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buffer
        )
        raw.commit()
        seconds = time.perf_counter() - started
        cursor.execute("SELECT count(*) FROM copy_target")
        (copied,) = cursor.fetchone() or (None,)
        cursor.execute("DROP TABLE copy_target")
        raw.commit()
    finally:
        raw.close()
    if copied != len(batch):
        raise WrongResult(f"COPY stored {copied} of {len(batch)} rows")
    return len(batch) / seconds


def warm_states(database_url: str, settings: Settings, cache: CheckCache) -> None:
    """A result for every check, so that the measured runs meet states that exist, as in
    a fleet that has been running (a check's first result creates its state once)."""
    first = results(CHECKS, datetime.now(UTC) - timedelta(days=1))
    with sessions(database_url).begin() as session:
        store_results(session, first, settings, cache)


def steady_start(database_url: str) -> datetime:
    """When results land in daily partitions of runs (Postgres, after the roll onto 0007:
    the legacy partition, with the indexes of the release before, covers the days
    before), with those partitions created, as the maintenance pass keeps them."""
    Session = sessions(database_url)
    with Session.begin() as session:
        legacy = partitions(session)[0]
    assert legacy.upper is not None
    maintain_partitions(Session, legacy.upper + timedelta(days=1))
    return legacy.upper + timedelta(hours=1)


class _NoRollups:
    """Ingest with the rollups left out, to measure what they cost it."""

    def __enter__(self) -> None:
        self.saved = getattr(ingest_module, "add_to_rollups")  # noqa: B009 - not exported
        setattr(ingest_module, "add_to_rollups", lambda session, runs: None)  # noqa: B010

    def __exit__(self, *_: object) -> None:
        setattr(ingest_module, "add_to_rollups", self.saved)  # noqa: B010


def _timed_store(
    database_url: str, settings: Settings, cache: CheckCache, batch: list[RunResult]
) -> float:
    factory = sessions(database_url)
    before = stored(database_url)
    size = settings.ingest_batch_size
    started = time.perf_counter()
    for start in range(0, len(batch), size):
        with factory.begin() as session:
            store_results(session, batch[start : start + size], settings, cache)
    seconds = time.perf_counter() - started
    if stored(database_url) - before != len(batch):
        raise WrongResult(f"storage kept {stored(database_url) - before} of {len(batch)}")
    return seconds


def storage_rates(
    database_url: str, settings: Settings, batch: list[RunResult], since: datetime
) -> tuple[float, float]:
    """(results/s with rollups, without), measured in alternating rounds on fresh results
    of the same shape, so that a neighbour's load on the shared machine falls on both."""
    factory = sessions(database_url)
    cache = warm_cache(database_url)
    warm_states(database_url, settings, cache)
    rounds = 4
    size = max(settings.ingest_batch_size, len(batch) // rounds)
    seconds = {"on": 0.0, "off": 0.0}
    counted = {"on": 0, "off": 0}
    failed: Counter[str] = Counter()
    for round_ in range(rounds):
        for mode in ("on", "off"):
            # Each round a minute on, as a fleet's next results would be: within one
            # hour, so that rollup rows are updated as in a fleet, not only inserted.
            start = since + timedelta(minutes=2 * round_ + (mode == "off"))
            part = results(size, start)
            if mode == "on":
                seconds[mode] += _timed_store(database_url, settings, cache, part)
            else:
                with _NoRollups():
                    seconds[mode] += _timed_store(database_url, settings, cache, part)
            counted[mode] += len(part)
            failed.update(r.check_id for r in part if r.status == "failed")
    # Stored twice, kept once.
    before = stored(database_url)
    with factory.begin() as session:
        again = store_results(session, part[: settings.ingest_batch_size], settings, cache)
    if again.inserted or stored(database_url) != before:
        raise WrongResult("a result delivered twice was stored twice")
    # Every failing check failed once in the warm-up and in each of its results since.
    with factory() as session:
        states: dict[str, int] = {k: v for k, v in session.execute(text(FAILURES)).all()}
    failing = [f"c{i}" for i in range(0, CHECKS, FAILING)]
    if states != {check_id: 1 + failed[check_id] for check_id in failing}:
        raise WrongResult("the failing checks' states did not count every failure")
    # The rollups count each result of the rounds with rollups once, and nothing else.
    with factory() as session:
        hours = rollups.stored(session, HOURLY_ROLLUPS)
    counted_runs = sum(t.runs for key, t in hours.items() if key[2] >= since)
    if counted_runs != counted["on"]:
        raise WrongResult(f"the rollups counted {counted_runs} of {counted['on']} results")
    return counted["on"] / seconds["on"], counted["off"] / seconds["off"]


def _writer(
    database_url: str,
    count: int,
    since: datetime,
    ready: Any,
    start: Any,
    done: multiprocessing.Queue[Any],
) -> None:
    """One ingest process's storage calls, timed from a common start."""
    settings = _settings(database_url)
    # Newer than every result stored before, as a fleet's next results would be.
    batch = results(count, since)
    size = settings.ingest_batch_size
    factory = sessions(database_url)
    cache = warm_cache(database_url)
    ready.release()
    start.wait()
    for first in range(0, count, size):
        with factory.begin() as session:
            store_results(session, batch[first : first + size], settings, cache)
    done.put(time.time())


def parallel_storage_rate(database_url: str, count: int, writers: int, since: datetime) -> float:
    """``writers`` ingest processes storing ``count`` results between them, all at once."""
    context = multiprocessing.get_context("spawn")
    ready, start, done = context.Semaphore(0), context.Event(), context.Queue()
    before = stored(database_url)
    processes = [
        context.Process(
            target=_writer,
            args=(database_url, count // writers, since, ready, start, done),
        )
        for _ in range(writers)
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            if not ready.acquire(timeout=60):
                raise WrongResult("an ingest writer did not start")
        started = time.time()
        start.set()
        finished = max(done.get(timeout=170) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    written = stored(database_url) - before
    if written != count // writers * writers:
        raise WrongResult(f"{writers} writers stored {written} of {count}")
    return float(written / (finished - started))


def queue_rates(
    settings: Settings, database_url: str, batch: list[RunResult]
) -> tuple[float, float]:
    """(synmon ingest from a full queue, bare receive-and-delete of as many messages)."""
    queue = queue_name(settings, "results")
    sender = BatchSender(settings)
    sender.send([Outgoing(queue, result_body(r, 2)) for r in batch])
    before = stored(database_url)
    stop = threading.Event()
    ingestor = Ingestor(settings, sessions(database_url), stop)
    started = time.perf_counter()
    while stored(database_url) - before < len(batch):
        ingestor.poll_once()
        if time.perf_counter() - started > 170:
            raise WrongResult(
                f"ingest stored {stored(database_url) - before} of {len(batch)} in time"
            )
    synmon_seconds = time.perf_counter() - started
    if stored(database_url) - before != len(batch):
        raise WrongResult("ingest stored more results than were sent")

    sender.send([Outgoing(queue, result_body(r, 2)) for r in batch])
    sqs, url = client_for(settings, queue), queue_urls(settings)(queue)
    removed = 0
    started = time.perf_counter()
    while removed < len(batch):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        if messages:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
        removed += len(messages)
    bare_seconds = time.perf_counter() - started
    return len(batch) / synmon_seconds, len(batch) / bare_seconds


def _settings(database_url: str) -> Settings:
    return load_settings(
        {"SYNMON_ENV": "test", "SYNMON_DATABASE_URL": database_url, "SYNMON_LOCATIONS": "eu-west-1"}
    )


def run(size: Size) -> list[Figure]:
    storage_count, queue_count = SIZES[size]
    figures = []
    with postgres_database() as database_url:
        settings = _settings(database_url)
        seed_checks(database_url)
        since = steady_start(database_url)
        batch = results(storage_count, since)
        copy = copy_rate(database_url, batch)
        storage, without_rollups = storage_rates(database_url, settings, batch, since)
        figures.append(
            Figure(
                "ingest",
                f"storage call, batches of {settings.ingest_batch_size}",
                "results/s",
                storage,
                copy,
                "COPY of the same rows into an unlogged table",
                goal=">= 0.5 of COPY",
                met=storage >= 0.5 * copy if size == "full" else None,
                notes=[
                    "one ingest process; each result also takes its check's state lock, "
                    "in the same transaction, and is added to the hourly and daily rollups",
                    "into daily partitions of runs (after the roll onto 0007)",
                    "the writer and Postgres share this machine's cores (and its neighbours')",
                ],
            )
        )
        figures.append(
            Figure(
                "ingest",
                "storage call with rollups, against without",
                "results/s",
                storage,
                without_rollups,
                "the same call with the rollups left out",
                goal=">= 0.9 (issue 15)",
                met=storage >= 0.9 * without_rollups if size == "full" else None,
                notes=["alternating rounds of the same size, each on fresh results"],
            )
        )
        parallel = parallel_storage_rate(database_url, storage_count, 2, since + timedelta(days=1))
        figures.append(
            Figure(
                "ingest",
                "storage call, 2 ingest processes at once",
                "results/s",
                parallel,
                storage,
                "one writer (above)",
                goal=f">= {GOAL:,.0f} results/s",
                met=parallel >= GOAL if size == "full" else None,
                notes=["the default deployment: Terraform's two control instances run one each"],
            )
        )
        with moto_server() as moto:
            queue_settings = settings.with_overrides(sqs_endpoint=moto.endpoint)
            create_queues(queue_settings)
            synmon, bare = queue_rates(queue_settings, database_url, results(queue_count))
        figures.append(
            Figure(
                "ingest",
                f"from a full results queue ({queue_count:,})",
                "results/s",
                synmon,
                bare,
                "receive and delete the same messages, storing nothing",
                notes=["moto's SQS server is the bottleneck here, for both"],
            )
        )
    return figures

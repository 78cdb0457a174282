"""Prometheus metrics.

Two sources:

* **Instruments** in the processes that see each event once: ingest counts every
  stored run (``synmon_runs_total{status,location,kind}``, ``synmon_run_duration_seconds``,
  ``synmon_ingest_lag_seconds``); the dispatcher counts every run it sends
  (``synmon_dispatched_runs_total``, ``synmon_dispatch_lag_seconds``) and every run
  request SQS refused for its content (``synmon_refused_runs_total{location,kind,code}``,
  set aside: see ``app.pipeline.dispatch``). A process
  exposes them on ``SYNMON_METRICS_PORT``, or, with ``SYNMON_METRICS_DIR`` (``synmon
  up``), writes them to a folder from which the status page's ``/metrics`` adds up all
  processes (prometheus_client's multiprocess mode).
* **Collectors** that ask at scrape time: queue depths and the age of the oldest
  message of each queue and DLQ (``synmon_queue_messages``,
  ``synmon_queue_oldest_message_age_seconds``), and check states (``synmon_checks``).

"Runs per region in the last 10 minutes" is ``increase(synmon_runs_total[10m])`` by
``location``. Labels never carry check ids or anything a check author wrote.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from config.settings import Settings

log = logging.getLogger("synmon.metrics")
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 240)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


def prepare_process(settings: Settings) -> None:
    """Call before anything imports prometheus_client: it reads its multiprocess folder
    once, on import (and Celery's CLI imports Flower, which imports it)."""
    if settings.metrics_dir is not None:
        settings.metrics_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(settings.metrics_dir))


@dataclass
class Instruments:
    runs: Any
    duration: Any
    ingest_lag: Any
    dispatched: Any
    dispatch_lag: Any
    refused: Any


_instruments: Instruments | None = None


def instruments(settings: Settings) -> Instruments:
    global _instruments  # noqa: PLW0603 - metric objects are process-wide by nature
    if _instruments is None:
        prepare_process(settings)
        from prometheus_client import Counter, Histogram

        _instruments = Instruments(
            runs=Counter("synmon_runs", "Stored runs", ["status", "location", "kind"]),
            duration=Histogram(
                "synmon_run_duration_seconds",
                "Duration of stored runs",
                ["location", "kind"],
                buckets=DURATION_BUCKETS,
            ),
            ingest_lag=Histogram(
                "synmon_ingest_lag_seconds",
                "From a run's end to its result being stored",
                buckets=LAG_BUCKETS,
            ),
            dispatched=Counter("synmon_dispatched_runs", "Run requests sent", ["location", "kind"]),
            dispatch_lag=Histogram(
                "synmon_dispatch_lag_seconds",
                "From a run's scheduled slot to its dispatch",
                buckets=LAG_BUCKETS,
            ),
            refused=Counter(
                "synmon_refused_runs",
                "Run requests SQS refused for their content, set aside",
                ["location", "kind", "code"],
            ),
        )
    return _instruments


@dataclass(frozen=True)
class StoredRun:
    status: str
    location: str
    kind: str
    duration_s: float
    ingest_lag_s: float


@dataclass(frozen=True)
class DispatchedRun:
    location: str
    kind: str
    lag_s: float


@dataclass(frozen=True)
class RefusedRun:
    location: str
    kind: str
    code: str  # SQS's error code


def record_stored(settings: Settings, runs: Sequence[StoredRun]) -> None:
    meters = instruments(settings)
    for run in runs:
        meters.runs.labels(run.status, run.location, run.kind).inc()
        meters.duration.labels(run.location, run.kind).observe(run.duration_s)
        meters.ingest_lag.observe(max(0.0, run.ingest_lag_s))


def record_dispatched(settings: Settings, runs: Sequence[DispatchedRun]) -> None:
    meters = instruments(settings)
    for run in runs:
        meters.dispatched.labels(run.location, run.kind).inc()
        meters.dispatch_lag.observe(max(0.0, run.lag_s))


def record_refused(settings: Settings, runs: Sequence[RefusedRun]) -> None:
    if not runs:
        return
    from app.pipeline.sqs import CONTENT_REFUSALS

    meters = instruments(settings)
    for run in runs:
        # The code comes from the server: a label takes only the values SQS documents.
        code = run.code if run.code in CONTENT_REFUSALS else "other"
        meters.refused.labels(run.location, run.kind, code).inc()


def serve_process_metrics(settings: Settings) -> None:
    """Expose this process's instruments on SYNMON_METRICS_PORT, if set."""
    if settings.metrics_port is None:
        return
    instruments(settings)
    from prometheus_client import REGISTRY, start_http_server

    start_http_server(
        settings.metrics_port, addr=settings.web_address, registry=_registry(settings) or REGISTRY
    )
    log.info("metrics on %s:%d", settings.web_address, settings.metrics_port)


def _registry(settings: Settings) -> Any:
    if settings.metrics_dir is None:
        return None
    prepare_process(settings)
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(settings.metrics_dir))  # type: ignore[no-untyped-call]
    return registry


class QueueCollector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from app.ops.queue_stats import all_stats

        depth = GaugeMetricFamily(
            "synmon_queue_messages",
            "Messages in a queue, by state",
            labels=["queue", "dead_letter", "state"],
        )
        age = GaugeMetricFamily(
            "synmon_queue_oldest_message_age_seconds",
            "Age of the oldest message (DLQs; all queues on AWS)",
            labels=["queue", "dead_letter"],
        )
        try:
            stats = all_stats(self.settings)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because SQS is down
            log.warning("queue metrics unavailable: %s", exc)
            stats = []
        for item in stats:
            dlq = "true" if item.dead_letter else "false"
            depth.add_metric([item.name, dlq, "visible"], item.visible)
            depth.add_metric([item.name, dlq, "in_flight"], item.in_flight)
            depth.add_metric([item.name, dlq, "delayed"], item.delayed)
            if item.oldest_age_s is not None:
                age.add_metric([item.name, dlq], item.oldest_age_s)
        yield depth
        yield age


class CheckStateCollector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily
        from sqlalchemy import func, select

        from app.storage.db import sessions
        from app.storage.models import CheckRow, CheckStateRow

        checks = GaugeMetricFamily("synmon_checks", "Checks by state", labels=["state"])
        try:
            with sessions(self.settings.database_url)() as session:
                states = dict(
                    session.execute(
                        select(CheckStateRow.status, func.count()).group_by(CheckStateRow.status)
                    ).all()
                )
                total = session.scalar(select(func.count()).select_from(CheckRow)) or 0
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database is down
            log.warning("check state metrics unavailable: %s", exc)
            return
        states["unknown"] = states.get("unknown", 0) + max(0, total - sum(states.values()))
        for state in ("passing", "degraded", "failing", "unknown"):
            checks.add_metric([state], states.get(state, 0))
        yield checks


class Metrics:
    """What the status page's ``/metrics`` serves."""

    def __init__(self, settings: Settings, queues: bool = True) -> None:
        prepare_process(settings)
        from prometheus_client import CollectorRegistry

        self.registry = _registry(settings) or CollectorRegistry()
        self.registry.register(CheckStateCollector(settings))
        if queues:
            self.registry.register(QueueCollector(settings))

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        data: Any = generate_latest(self.registry)
        return bytes(data)

"""Prometheus metrics of the whole installation, computed when scraped.

Counters and histograms of the processes that do the work (dispatcher, ingest) come
from those processes; this collector adds what only the database and SQS know: runs
and their durations per location over recent windows, check states, and queue depths.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from app.storage.db import sessions
from app.storage.models import CheckRunRow, CheckStateRow
from config.settings import Settings

log = logging.getLogger("synmon.metrics")
WINDOWS = {"1m": 60, "10m": 600, "1h": 3600}


class DatabaseCollector(Collector):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions = sessions(settings.database_url)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = datetime.now(UTC)
        runs = GaugeMetricFamily(
            "synmon_runs_recent",
            "Stored runs that started within the window",
            labels=["window", "location", "kind", "status"],
        )
        with self.sessions() as session:
            for window, seconds in WINDOWS.items():
                rows = session.execute(
                    select(CheckRunRow.location, CheckRunRow.kind, CheckRunRow.status, func.count())
                    .where(CheckRunRow.started_at >= now - timedelta(seconds=seconds))
                    .group_by(CheckRunRow.location, CheckRunRow.kind, CheckRunRow.status)
                ).all()
                for location, kind, status, count in rows:
                    runs.add_metric([window, location, kind, status], count)
            states = GaugeMetricFamily("synmon_checks", "Checks by state", labels=["state"])
            for state, count in session.execute(
                select(CheckStateRow.status, func.count()).group_by(CheckStateRow.status)
            ).all():
                states.add_metric([state], count)
        yield runs
        yield states


class QueueCollector(Collector):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from app.queue_stats import all_stats

        depth = GaugeMetricFamily(
            "synmon_queue_messages",
            "Messages in a queue by state",
            labels=["queue", "dead_letter", "state"],
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
        yield depth


class Metrics:
    def __init__(self, settings: Settings, queues: bool = True) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(DatabaseCollector(settings))
        if queues:
            self.registry.register(QueueCollector(settings))

    def render(self) -> bytes:
        data: Any = generate_latest(self.registry)
        return bytes(data)

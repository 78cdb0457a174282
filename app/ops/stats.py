"""Run statistics from the database: counts, success ratio and run-time percentiles,
per location or per check, over a recent window (``synmon stats``)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.storage.bulk import is_postgres
from app.storage.models import CheckRunRow

GroupBy = Literal["location", "check"]
PERCENTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Stats:
    key: str
    runs: int
    passed: int
    degraded: int
    failed: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def success_ratio(self) -> float:
        """Runs that passed, degraded ones included (they did what they should, slowly)."""
        return (self.passed + self.degraded) / self.runs if self.runs else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "success_ratio": round(self.success_ratio, 4)}


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks, as Postgres's percentile_cont."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    weight = position - low
    return sorted_values[low] * (1 - weight) + sorted_values[high] * weight


def run_stats(
    session: Session, since: timedelta, by: GroupBy = "location", now: datetime | None = None
) -> list[Stats]:
    start = (now or datetime.now(UTC)) - since
    column = CheckRunRow.location if by == "location" else CheckRunRow.check_id
    window = CheckRunRow.started_at >= start
    counts = session.execute(
        select(column, CheckRunRow.status, func.count())
        .where(window)
        .group_by(column, CheckRunRow.status)
    ).all()
    by_key: dict[str, dict[str, int]] = defaultdict(dict)
    for key, status, count in counts:
        by_key[key][status] = count
    if is_postgres(session):
        rows = session.execute(
            select(
                column,
                *[
                    func.percentile_cont(p).within_group(CheckRunRow.duration_ms)
                    for p in PERCENTILES
                ],
            )
            .where(window)
            .group_by(column)
        ).all()
        quantiles = {row[0]: [float(v) for v in row[1:]] for row in rows}
    else:
        durations: dict[str, list[float]] = defaultdict(list)
        for key, duration in session.execute(
            select(column, CheckRunRow.duration_ms)
            .where(window)
            .order_by(column, CheckRunRow.duration_ms)
        ):
            durations[key].append(duration)
        quantiles = {
            key: [percentile(values, p) for p in PERCENTILES] for key, values in durations.items()
        }
    return [
        Stats(
            key=key,
            runs=sum(statuses.values()),
            passed=statuses.get("passed", 0),
            degraded=statuses.get("degraded", 0),
            failed=statuses.get("failed", 0),
            p50_ms=round(quantiles[key][0], 1),
            p95_ms=round(quantiles[key][1], 1),
            p99_ms=round(quantiles[key][2], 1),
        )
        for key, statuses in sorted(by_key.items())
    ]

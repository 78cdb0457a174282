"""Check retries through the real pipeline: SQS delays, strategies, limits, locations;
and a worker that is stopped while a check runs finishes it first."""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.api import trigger, wait_for_runs
from app.storage.models import CheckRunRow
from tests.support.pipeline import Pipeline, running_pipeline
from tests.support.servers import TargetServer, http_target

pytestmark = [pytest.mark.slow, pytest.mark.processes]
LOCATIONS = ["eu-west-1", "us-east-1"]
# Between the start of one attempt and the next: the attempt itself, ingest picking up
# its result (long poll of 1 s), the outbox relay, and a worker's long poll.
OVERHEAD = 3.0


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


@pytest.fixture(scope="module")
def pipeline(target: TargetServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    env = {
        "SYNMON_LOCATIONS": ",".join(LOCATIONS),
        "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{target.port}",
    }
    workers = [(location, "http", 2) for location in LOCATIONS]
    with running_pipeline(tmp_path_factory.mktemp("retries"), env, workers, beat=False) as running:
        yield running


def failing(
    check_id: str, target: TargetServer, retry: dict[str, Any], path: str = "/status/500"
) -> dict[str, Any]:
    return {
        "id": check_id,
        "type": "http",
        "frequency": "24h",
        "locations": LOCATIONS,
        "run_mode": "round-robin",
        "request": {"url": target.url(path), "timeout": "5s"},
        "retry": retry,
    }


def attempts_of(pipeline: Pipeline, check_id: str) -> list[CheckRunRow]:
    (run_id,) = trigger(check_id, location="eu-west-1", settings=pipeline.settings)
    rows = wait_for_runs([run_id], 120, pipeline.settings)
    return sorted(rows, key=lambda r: r.attempt)


def gaps(rows: list[CheckRunRow]) -> list[float]:
    return [(b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(rows)]


def test_exponential_retries_in_other_locations(pipeline: Pipeline, target: TargetServer) -> None:
    pipeline.sync(
        {
            "checks": [
                failing(
                    "exp",
                    target,
                    {
                        "strategy": "exponential",
                        "max_retries": 2,
                        "base_backoff": "2s",
                        "max_duration": "2m",
                        "same_region": False,
                    },
                )
            ]
        }
    )
    rows = attempts_of(pipeline, "exp")
    assert [r.attempt for r in rows] == [1, 2, 3]
    assert [r.location for r in rows] == ["eu-west-1", "us-east-1", "eu-west-1"]
    assert [r.final for r in rows] == [False, False, True]
    assert len({r.root_run_id for r in rows}) == 1 and rows[0].root_run_id == rows[0].run_id
    for gap, delay in zip(gaps(rows), [2, 4], strict=True):
        assert delay <= gap <= delay + OVERHEAD, gaps(rows)


def test_linear_retries_stop_at_max_duration(pipeline: Pipeline, target: TargetServer) -> None:
    # Retry 1 after 3 s; retry 2 would start 3 + 6 s after the slot, beyond max_duration.
    pipeline.sync(
        {
            "checks": [
                failing(
                    "lin",
                    target,
                    {
                        "strategy": "linear",
                        "max_retries": 5,
                        "base_backoff": "3s",
                        "max_duration": "7s",
                        "same_region": True,
                    },
                )
            ]
        }
    )
    rows = attempts_of(pipeline, "lin")
    assert [r.attempt for r in rows] == [1, 2]
    assert [r.location for r in rows] == ["eu-west-1", "eu-west-1"]
    (gap,) = gaps(rows)
    assert 3 <= gap <= 3 + OVERHEAD
    time.sleep(8)
    assert len(pipeline.rows(check_id="lin")) == 2


def test_fixed_retries_stop_at_max_retries_and_a_pass_ends_them(
    pipeline: Pipeline, target: TargetServer
) -> None:
    pipeline.sync(
        {
            "checks": [
                failing(
                    "fixed", target, {"strategy": "fixed", "max_retries": 1, "base_backoff": "2s"}
                ),
                failing(
                    "net",
                    target,
                    {
                        "strategy": "fixed",
                        "max_retries": 3,
                        "base_backoff": "1s",
                        "network_only": True,
                    },
                ),
                failing(
                    "fine",
                    target,
                    {"strategy": "fixed", "max_retries": 3, "base_backoff": "1s"},
                    path="/ok",
                ),
            ]
        }
    )
    fixed = attempts_of(pipeline, "fixed")
    assert [r.attempt for r in fixed] == [1, 2]
    (gap,) = gaps(fixed)
    assert 2 <= gap <= 2 + OVERHEAD
    # An assertion failure is not a network error: network_only does not retry it.
    assert [r.attempt for r in attempts_of(pipeline, "net")] == [1]
    assert [(r.attempt, r.status) for r in attempts_of(pipeline, "fine")] == [(1, "passed")]


def test_sigterm_lets_the_running_check_finish(pipeline: Pipeline, target: TargetServer) -> None:
    pipeline.sync(
        {
            "checks": [
                {
                    "id": "four-seconds",
                    "type": "http",
                    "frequency": "24h",
                    "locations": ["us-east-1"],
                    "request": {"url": target.url("/slow?delay=4"), "timeout": "10s"},
                }
            ]
        }
    )
    hits = len(target.hits)
    (run_id,) = trigger("four-seconds", settings=pipeline.settings)
    from tests.support.processes import wait_until

    wait_until(lambda: len(target.hits) > hits, 30, 0.05, "the check started")
    worker = dict(pipeline.synmon.processes)["worker-us-east-1-http"]
    stopped = time.monotonic()
    assert pipeline.synmon.stop(worker, signal.SIGTERM, timeout=30) == 0
    took = time.monotonic() - stopped
    # It waited for the check (4 s) and no longer than the check's timeout and a margin.
    assert 2.5 < took < 10 + 5, took
    (row,) = pipeline.rows(run_id=run_id)
    assert row.status == "passed" and row.deliveries == 1

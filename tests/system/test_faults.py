"""Faults inflicted on real processes: every run still ends as exactly one stored result.

Run queues here have an 8 s visibility timeout (``FAST_QUEUES``), so that a message held
by a killed worker comes back within the test's patience.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from sqlalchemy import func, select

from app.pipeline.sqs import BatchSender
from app.storage.db import migrate, sessions
from app.storage.models import CheckRunRow
from config.settings import Settings
from tests.support.faults import FAST_QUEUES, assert_exactly_once, send_runs, stored_counts
from tests.support.pipeline import Pipeline, http_check, running_pipeline
from tests.support.postgres_cluster import postgres_cluster
from tests.support.processes import kill_group, moto_server, pool_children, wait_until
from tests.support.results import run_result
from tests.support.servers import TargetServer, http_target
from tests.support.tcp_proxy import Outage

pytestmark = [pytest.mark.slow, pytest.mark.processes]


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


def env_for(target: TargetServer, **extra: str) -> dict[str, str]:
    return {**FAST_QUEUES, "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{target.port}", **extra}


def slow_check(pipeline: Pipeline, target: TargetServer, delay: float = 2.0) -> dict[str, object]:
    url = target.url(f"/slow?delay={delay}")
    pipeline.sync({"checks": [http_check("slow", url, request={"timeout": "5s"})]})
    return pipeline.definition("slow")


def worker_process(pipeline: Pipeline) -> psutil.Popen:
    (_, process), *_ = [
        p for p in pipeline.synmon.processes if p[0].startswith("worker") and p[1].poll() is None
    ]
    return process


def test_kill_9_of_a_pool_process_mid_check(target: TargetServer, tmp_path: Path) -> None:
    # Only prefork has pool processes; the other fault tests run on the default, threads.
    env = env_for(target, SYNMON_HTTP_POOL="prefork")
    with running_pipeline(tmp_path, env, beat=False) as pipeline:
        definition = slow_check(pipeline, target)
        hits_before = len(target.hits)
        run_ids = send_runs(pipeline.settings, definition, 6)
        wait_until(lambda: len(target.hits) > hits_before, 30, message="a check in progress")
        (victim, *_) = pool_children(worker_process(pipeline).pid)
        os.kill(victim, signal.SIGKILL)
        assert_exactly_once(pipeline, run_ids)
        with sessions(pipeline.settings.database_url)() as session:
            redelivered = session.scalar(
                select(func.count()).where(
                    CheckRunRow.run_id.in_(run_ids), CheckRunRow.deliveries > 1
                )
            )
        assert redelivered >= 1


def test_kill_9_of_the_whole_worker_mid_check(target: TargetServer, tmp_path: Path) -> None:
    with running_pipeline(tmp_path, env_for(target), beat=False) as pipeline:
        definition = slow_check(pipeline, target)
        hits_before = len(target.hits)
        run_ids = send_runs(pipeline.settings, definition, 6)
        wait_until(lambda: len(target.hits) > hits_before, 30, message="a check in progress")
        kill_group(worker_process(pipeline))
        pipeline.synmon.start("worker-2", "worker", "-l", "eu-west-1", "-k", "http", "-c", "2")
        assert_exactly_once(pipeline, run_ids)


def test_sigterm_during_a_burst_of_200_runs(target: TargetServer, tmp_path: Path) -> None:
    with running_pipeline(tmp_path, env_for(target), beat=False) as pipeline:
        # A second worker already consuming takes at once what the stopped one hands
        # back; what it did not hand back waits out its visibility timeout (8 s) instead.
        pipeline.synmon.start(
            "worker-2", "worker", "-l", "eu-west-1", "-k", "http", "-c", "2", "-n", "second@test"
        )
        wait_until(
            lambda: list(health_states(pipeline).values()).count("consuming") >= 3,
            60,
            0.5,
            "both workers and ingest consuming",
        )
        definition = slow_check(pipeline, target, delay=0.15)
        run_ids = send_runs(pipeline.settings, definition, 200)
        wait_until(
            lambda: sum(stored_counts(pipeline, run_ids).values()) >= 40, 60, 0.2, "40 runs stored"
        )
        worker = worker_process(pipeline)
        stopped = time.monotonic()
        stopped_at = datetime.now(UTC)
        code = pipeline.synmon.stop(worker, signal.SIGTERM, timeout=30)
        took = time.monotonic() - stopped
        assert code == 0, pipeline.synmon.log("worker-eu-west-1-http")[-2000:]
        # The running checks finish (0.15 s each); nothing waits for more work.
        assert took < 5 + 3, f"the worker took {took:.1f}s to stop"
        done_at_stop = sum(stored_counts(pipeline, run_ids).values())
        assert done_at_stop < 200, "the burst was over before SIGTERM; the test proves nothing"
        assert_exactly_once(pipeline, run_ids)
        # Handed-back messages did not wait out their visibility timeout (8 s) first.
        late = [
            (r.started_at - stopped_at).total_seconds()
            for r in pipeline.rows()
            if r.deliveries > 1 and r.started_at > stopped_at
        ]
        assert all(wait < 5 for wait in late), late


def runs_through_an_outage(
    pipeline: Pipeline,
    target: TargetServer,
    sender: Settings,
    cut: Callable[[], None],
    restore: Callable[[], None],
    while_down: Callable[[], None] = lambda: None,
) -> None:
    """Runs sent every half second and a check every 10 s, across ``cut`` ... ``restore``
    (10 s apart): every run ends as one result, no scheduled slot is missing or doubled,
    and every synmon process is still running."""
    pipeline.sync(
        {
            "checks": [
                http_check("slow", target.url("/slow?delay=0.1"), request={"timeout": "5s"}),
                http_check(
                    "every-10s", target.url("/ok"), frequency="10s", request={"timeout": "5s"}
                ),
            ]
        }
    )
    definition = pipeline.definition("slow")
    run_ids: list[uuid.UUID] = []
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            run_ids.extend(send_runs(sender, definition, 3))
            stop.wait(0.5)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(6)
    down_since = time.monotonic()
    cut()
    time.sleep(6)
    while_down()  # within the remaining seconds of the outage
    time.sleep(max(0.0, 10 - (time.monotonic() - down_since)))
    restore()
    time.sleep(8)
    stop.set()
    producer.join()
    assert_exactly_once(pipeline, run_ids, timeout=180)
    # Every dispatched slot stored once. A slot that fell wholly inside the outage is
    # skipped by design (a check behind by more than a period runs once, at its latest
    # slot): gaps are whole periods, and at most one of them is two periods long.
    slots = [r.scheduled_at for r in pipeline.rows(check_id="every-10s")]
    assert len(slots) == len(set(slots)) >= 2
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(slots)]
    assert all(gap in (10, 20) for gap in gaps) and gaps.count(20) <= 1, gaps
    for name in ("ingest", "beat", "worker-eu-west-1-http"):
        process = dict(pipeline.synmon.processes)[name]
        assert process.poll() is None, f"{name} died: {pipeline.synmon.log(name)[-1500:]}"


def health_states(pipeline: Pipeline) -> dict[str, str]:
    """What ``synmon health`` says of each process, by the start of its name."""
    report = json.loads(pipeline.synmon.command("health", "--json", check=False).stdout)
    return {p["name"].split("@")[0]: p["state"] for p in report["processes"]}


def test_sqs_down_for_10_seconds_while_runs_flow(target: TargetServer, tmp_path: Path) -> None:
    with moto_server() as moto:
        outage = Outage(moto.port).start()
        # Silent for 3 s is an outage here (30 s by default), so that health can tell.
        env = env_for(target, SYNMON_SQS_ENDPOINT=outage.endpoint, SYNMON_SQS_SILENCE="3")
        with running_pipeline(tmp_path, env, moto=moto) as pipeline:

            def consuming() -> bool:
                states = health_states(pipeline)
                return {"ingest", "http-eu-west-1"} <= set(states) and set(states.values()) == {
                    "consuming"
                }

            wait_until(consuming, 30, 0.5, "every process consuming")

            def reported_down() -> None:
                states = health_states(pipeline)
                assert states["ingest"] == "sqs-or-database-unavailable", states
                assert states["http-eu-west-1"] == "sqs-unreachable", states

            # The test sends past the outage, straight to moto; synmon goes through it.
            direct = pipeline.settings.with_overrides(sqs_endpoint=moto.endpoint)
            runs_through_an_outage(
                pipeline, target, direct, outage.cut, outage.restore, reported_down
            )
            wait_until(consuming, 30, 1, "every process consuming again")


def test_postgres_restarted_while_runs_flow(target: TargetServer, tmp_path: Path) -> None:
    with postgres_cluster() as cluster:
        migrate(cluster.url)
        with running_pipeline(tmp_path, env_for(target), database_url=cluster.url) as pipeline:
            runs_through_an_outage(pipeline, target, pipeline.settings, cluster.stop, cluster.start)
            assert "database unavailable, holding" in pipeline.synmon.log("ingest")


def test_ingest_killed_mid_batch_loses_and_doubles_nothing(tmp_path: Path) -> None:
    from app.pipeline.queues import queue_name
    from app.pipeline.sqs import Outgoing
    from app.pipeline.wire import result_body

    with running_pipeline(tmp_path, FAST_QUEUES, workers=[], ingest=False, beat=False) as pipeline:
        results = [run_result(check_id="gone") for _ in range(400)]
        queue = queue_name(pipeline.settings, "results")
        BatchSender(pipeline.settings).send([Outgoing(queue, result_body(r, 2)) for r in results])
        run_ids = [r.run_id for r in results]
        for round_number in range(2):
            ingest = pipeline.synmon.start(f"ingest-{round_number}", "ingest")
            floor = sum(stored_counts(pipeline, run_ids).values())
            # Killed while it holds received, partly stored batches.
            wait_until(
                lambda floor=floor: sum(stored_counts(pipeline, run_ids).values()) > floor + 60,
                60,
                0.02,
                "ingest making progress",
            )
            kill_group(ingest)
        pipeline.synmon.start("ingest-final", "ingest")
        assert_exactly_once(pipeline, run_ids, timeout=180)

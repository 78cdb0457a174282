"""The rolling update over local processes: four workers go from release v1 (messages
v1) to v2 while the dispatcher switches from v1 to v2 mid-roll, with checks every 2 s.

Every scheduled run has exactly one stored result, no check goes more than twice its
frequency without a result, nothing lands in a DLQ; the figures are printed."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.ops.queue_stats import all_stats
from app.storage.db import sessions
from app.storage.models import CheckRunRow
from tests.support.pipeline import Pipeline, running_pipeline
from tests.support.processes import ROOT, wait_until
from tests.support.servers import http_target

pytestmark = [pytest.mark.slow, pytest.mark.processes]
FREQUENCY = 2.0
CHECKS = ["every-2s-a", "every-2s-b", "every-2s-c"]
V1 = {"SYNMON_RELEASE": "v1", "SYNMON_MESSAGE_VERSION": "1"}
V2 = {"SYNMON_RELEASE": "v2", "SYNMON_MESSAGE_VERSION": "2"}
# From a slot to its run's start: a dispatcher tick, a receive and a run handed back by a
# stopping worker fit well within it; a run left to its visibility timeout does not.
MAX_WAIT = 2 * FREQUENCY


def dispatched_runs(log: str) -> int:
    total = 0
    for line in log.splitlines():
        if line.startswith("{") and '"synmon.dispatch"' in line:
            total += int(json.loads(line).get("runs", 0))
    return total


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_rolling_update_from_v1_to_v2(pool: str, tmp_path: Path) -> None:
    with http_target() as target:
        env = {
            "SYNMON_MIN_FREQUENCY": "2",
            "SYNMON_DISPATCH_INTERVAL": "0.5",
            "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{target.port}",
            "SYNMON_HTTP_POOL": pool,
            # An idle worker is in a long poll; a longer one makes it likelier that a worker
            # is stopped while SQS is about to hand its receive a run (which, left
            # unanswered, waited out its 45 s visibility timeout: MAX_WAIT catches it).
            "SYNMON_SQS_WAIT_TIME_SECONDS": "4",
            **V1,
        }
        with running_pipeline(tmp_path, env, workers=[], beat=False) as pipeline:
            synmon = pipeline.synmon
            old = [
                synmon.start(
                    f"old-{i}",
                    "worker",
                    "-l",
                    "eu-west-1",
                    "-k",
                    "http",
                    "-c",
                    "1",
                    "--name",
                    f"http-eu-west-1-v1-{i}@test",
                )
                for i in range(4)
            ]
            beat_v1 = synmon.start("beat-v1", "beat")
            pipeline.sync(
                {
                    "checks": [
                        {
                            "id": check_id,
                            "type": "http",
                            "frequency": "2s",
                            "locations": ["eu-west-1"],
                            "request": {"url": target.url("/ok"), "timeout": "2s"},
                        }
                        for check_id in CHECKS
                    ]
                }
            )
            wait_until(lambda: len(pipeline.rows()) >= 15, 60, 0.5, "v1 runs flowing")

            roll = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app.cli",
                    "rollout",
                    "--location",
                    "eu-west-1",
                    "--kind",
                    "http",
                    "--count",
                    "4",
                    # One slot each, as the old workers: four prefork workers of the
                    # default four processes are more than this machine's two cores start
                    # in time.
                    "--concurrency",
                    "1",
                    *itertools.chain.from_iterable(("--replace", str(p.pid)) for p in old),
                    *itertools.chain.from_iterable(("--set", f"{k}={v}") for k, v in V2.items()),
                ],
                cwd=ROOT,
                env=synmon.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            lines: list[str] = []
            switched = threading.Event()

            def follow() -> None:
                assert roll.stdout is not None
                for line in roll.stdout:
                    lines.append(line.rstrip())
                    if "stopped old worker 2/4" in line:
                        # Mid-roll the dispatcher changes too: the v2 beat starts, then
                        # the v1 beat stops; for a moment both run (SKIP LOCKED).
                        synmon.start("beat-v2", "beat", env=V2)
                        # Stopped only once the v2 beat dispatches: a beat slow to start
                        # (a loaded machine) would otherwise leave slots to nobody.
                        wait_until(
                            lambda: dispatched_runs(synmon.log("beat-v2")) > 0,
                            120,
                            0.2,
                            "the v2 beat dispatching",
                        )
                        time.sleep(1)
                        synmon.stop(beat_v1)
                        switched.set()

            follower = threading.Thread(target=follow)
            follower.start()
            try:
                assert roll.wait(timeout=300) == 0, "\n".join(lines)
                follower.join(timeout=150)  # the v2 beat may be slow to start
                check_the_roll(pipeline, old, lines, switched)
            finally:
                # The rollout hands its new workers over: they outlive it, on purpose.
                for pid in new_worker_pids(lines):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)


def new_worker_pids(lines: list[str]) -> list[int]:
    return [
        int(m) for line in lines for m in re.findall(r"started new worker \S+ \(pid (\d+)\)", line)
    ]


def check_the_roll(
    pipeline: Pipeline,
    old: list[subprocess.Popen[bytes]],
    lines: list[str],
    switched: threading.Event,
) -> None:
    synmon = pipeline.synmon
    assert switched.is_set(), "\n".join(lines)
    for process in old:
        assert process.wait(timeout=10) == 0  # drained and exited cleanly
    time.sleep(10)  # v2 everywhere

    beat_v2 = dict(synmon.processes)["beat-v2"]
    synmon.stop(beat_v2)
    dispatched = dispatched_runs(synmon.log("beat-v1")) + dispatched_runs(synmon.log("beat-v2"))
    wait_until(lambda: len(pipeline.rows()) >= dispatched, 60, 0.5, "every dispatched run stored")
    time.sleep(3)

    with sessions(pipeline.settings.database_url)() as session:
        stored = session.scalar(select(func.count()).select_from(CheckRunRow)) or 0
        distinct = session.scalar(select(func.count(func.distinct(CheckRunRow.run_id)))) or 0
    rows = pipeline.rows()
    gaps, max_gap = [], 0.0
    for check_id in CHECKS:
        mine = sorted((r for r in rows if r.check_id == check_id), key=lambda r: r.scheduled_at)
        slots = [r.scheduled_at for r in mine]
        assert len(slots) == len(set(slots)), f"{check_id}: a slot ran twice"
        assert all((b - a).total_seconds() == FREQUENCY for a, b in itertools.pairwise(slots)), (
            f"{check_id}: a slot is missing"
        )
        started = sorted(r.started_at for r in mine)
        gaps += [(b - a).total_seconds() for a, b in itertools.pairwise(started)]
    max_gap = max(gaps)
    # A run handed back late (left to its visibility timeout by a stopping worker) still
    # gets its one result, and the sorted start times of the others hide it: the wait
    # from its slot to its start does not.
    # By the wait alone: two runs that waited as long must not be compared themselves.
    waits = sorted(
        (((r.started_at - r.scheduled_at).total_seconds(), r) for r in rows),
        key=lambda pair: pair[0],
    )
    max_wait, slowest = waits[-1]
    redelivered = sum(1 for r in rows if r.deliveries > 1)
    dead = {s.name: s.visible + s.in_flight for s in all_stats(pipeline.settings) if s.dead_letter}
    versions = {(r.worker_version, r.message_version) for r in rows}
    print(
        f"\nrolling update: {dispatched} runs dispatched, {stored} stored, "
        f"{dispatched - distinct} lost, {stored - distinct} duplicated, "
        f"longest gap between two results {max_gap:.2f}s (frequency {FREQUENCY:g}s), "
        f"longest wait from slot to start {max_wait:.2f}s ({slowest.check_id} at "
        f"{slowest.scheduled_at:%H:%M:%S}, delivery {slowest.deliveries}, "
        f"{slowest.worker_host}), {redelivered} runs delivered more than once, "
        f"messages in DLQs {sum(dead.values())}, releases seen {sorted(versions)}"
    )
    print("\n".join(lines))
    assert stored == distinct == dispatched
    assert max_gap <= 2 * FREQUENCY
    assert max_wait <= MAX_WAIT, f"a run waited {max_wait:.1f}s from its slot to its start"
    assert sum(dead.values()) == 0, dead
    assert {("v1", 1), ("v2", 2)} <= versions

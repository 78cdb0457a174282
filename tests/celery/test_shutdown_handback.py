"""A worker stopped while its receive is still waiting on SQS hands back what that receive
brings, visible at once, instead of leaving it to its visibility timeout.

A worker is always in a long poll when idle. Stopped then, it used to leave that request
unanswered: SQS still gave the next message to it, and nobody could run that message
until its visibility timeout (45 s here) ran out. In the rolling update this was the run
that waited about half a minute.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.faults import send_runs
from tests.support.pipeline import http_check, running_pipeline
from tests.support.processes import wait_until
from tests.support.servers import http_target

pytestmark = [pytest.mark.slow, pytest.mark.processes]

# A long poll long enough that the stop certainly falls inside one.
WAIT_TIME = 8
# Far below the run queue's visibility timeout (SYNMON_HTTP_MAX_TIMEOUT 30 + 15 s).
PATIENCE = 25.0


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_a_message_taken_by_a_stopping_workers_last_receive_comes_back_at_once(
    pool: str, tmp_path: Path
) -> None:
    with http_target() as target:
        env = {
            "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{target.port}",
            "SYNMON_HTTP_POOL": pool,
            "SYNMON_SQS_WAIT_TIME_SECONDS": str(WAIT_TIME),
        }
        workers = [("eu-west-1", "http", 1)]
        with running_pipeline(tmp_path, env, workers=workers, beat=False) as pipeline:
            pipeline.sync({"checks": [http_check("ok", target.url("/ok"))]})
            definition = pipeline.definition("ok")
            synmon = pipeline.synmon
            (old,) = [p for name, p in synmon.processes if name.startswith("worker")]
            # A first run, once stored, tells that the worker is up; a second later it has
            # acknowledged that run and begun a new long poll: the stop falls early in it.
            (primer,) = send_runs(pipeline.settings, definition, 1)
            wait_until(lambda: pipeline.rows(run_id=primer), 90, 0.05, "the first run stored")
            time.sleep(1.0)

            old.send_signal(signal.SIGTERM)
            # The event loop wakes at least once a second (kombu's HTTP client has a timer):
            # by then the worker is stopping, and only its receive still waits on SQS.
            time.sleep(2.0)
            sent = datetime.now(UTC)
            (victim,) = send_runs(pipeline.settings, definition, 1)
            stopping = time.monotonic()
            assert old.wait(timeout=WAIT_TIME + 15) == 0, synmon.log("worker-eu-west-1-http")
            stopped_after = time.monotonic() - stopping

            synmon.start("worker-new", "worker", "-l", "eu-west-1", "-k", "http", "-c", "1")
            (row,) = wait_until(lambda: pipeline.rows(run_id=victim), 90, 0.2, "the run stored")
            waited = (row.started_at - sent).total_seconds()
            print(
                f"\n{pool}: stopping worker exited {stopped_after:.1f}s after the run was sent; "
                f"the run started {waited:.1f}s after it was sent, delivery {row.deliveries}"
            )
            # Delivered twice: the stopping worker's receive took it, and handed it back.
            assert row.deliveries == 2, "the stopping worker's receive did not take the run"
            assert waited < PATIENCE, f"the run waited {waited:.1f}s: its visibility timeout"
            assert stopped_after < WAIT_TIME + 5

"""A region down for many periods, through real workers, ingest and a real webhook.

Two locations, each with its own worker: the eu-west-1 worker reaches the target on a
port where nothing listens (connection refused), the us-east-1 worker reaches it. The
check must page once and stay quiet while the region stays down and the other passes,
then recover once when the region comes back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pipeline import Pipeline, running_pipeline
from tests.support.processes import free_port, wait_until
from tests.support.servers import TargetServer, http_target

pytestmark = pytest.mark.processes

EU, US = "eu-west-1", "us-east-1"


@pytest.fixture
def hooks() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


def notifications(server: TargetServer) -> list[str]:
    return [
        json.loads(hit["body"])["event"]
        for hit in list(server.hits)
        if hit["path"] == "/echo" and hit["body"]
    ]


def finals(pipeline: Pipeline, location: str, status: str, after: float = 0.0) -> int:
    return sum(
        1
        for row in pipeline.rows(check_id="api", location=location, status=status)
        if row.started_at.timestamp() > after
    )


@pytest.mark.slow
def test_a_region_down_pages_once_and_recovers_once(hooks: TargetServer, tmp_path: Path) -> None:
    closed = free_port()
    env = {
        "SYNMON_LOCATIONS": f"{EU},{US}",
        "SYNMON_MIN_FREQUENCY": "2",
        "SYNMON_DISPATCH_INTERVAL": "0.5",
        "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{hooks.port},127.0.0.1:{closed}",
        "SYNMON_PUBLIC_VAR_TARGET": f"127.0.0.1:{hooks.port}",
    }
    with running_pipeline(tmp_path, env, [(US, "http", 1)]) as pipeline:
        region = pipeline.synmon.start(
            "worker-eu-down",
            "worker",
            "-l",
            EU,
            "-k",
            "http",
            "-c",
            "1",
            env={"SYNMON_PUBLIC_VAR_TARGET": f"127.0.0.1:{closed}"},
        )
        pipeline.sync(
            {
                "channels": [{"id": "hook", "type": "webhook", "url": hooks.url("/echo")}],
                "checks": [
                    {
                        "id": "api",
                        "type": "http",
                        "frequency": "2s",
                        "locations": [EU, US],
                        "request": {"url": "http://{{TARGET}}/ok", "timeout": "1s"},
                        "retry": {"strategy": "none"},
                        "alert": {"after_failures": 2, "channels": ["hook"]},
                    }
                ],
            }
        )
        wait_until(
            lambda: finals(pipeline, EU, "failed") >= 8 and finals(pipeline, US, "passed") >= 8,
            timeout=120,
            message="eight periods with eu-west-1 down and us-east-1 up",
        )
        wait_until(lambda: notifications(hooks), timeout=30, message="the failure notification")
        time.sleep(3)  # a notification that should not exist has had time to be sent
        assert notifications(hooks) == ["failure"]

        pipeline.synmon.stop(region)
        back = time.time()
        pipeline.synmon.start("worker-eu-back", "worker", "-l", EU, "-k", "http", "-c", "1")
        wait_until(
            lambda: finals(pipeline, EU, "passed", after=back) >= 3,
            timeout=90,
            message="eu-west-1 passing again",
        )
        wait_until(lambda: len(notifications(hooks)) >= 2, timeout=30, message="the recovery")
        time.sleep(3)
        assert notifications(hooks) == ["failure", "recovery"]

"""A run whose check definition this worker refuses ends as a stored, failed result.

A definition stored by a release with looser limits (or altered in the database) still
travels in its run requests. The worker cannot run it, but the run is not a job
failure: it ends as one failed result naming the field, not as a message in the DLQ.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.execution.runs import RunRequest
from app.pipeline.dispatch import run_request_message
from app.pipeline.sqs import BatchSender
from tests.support.faults import FAST_QUEUES
from tests.support.pipeline import http_check, running_pipeline
from tests.support.processes import wait_until
from tests.support.servers import TargetServer, http_target

pytestmark = pytest.mark.processes


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


@pytest.mark.slow
def test_a_definition_the_worker_refuses_is_a_failed_result(
    target: TargetServer, tmp_path: Path
) -> None:
    env = {**FAST_QUEUES, "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{target.port}"}
    with running_pipeline(tmp_path, env, beat=False) as pipeline:
        pipeline.sync({"checks": [http_check("old", target.url("/ok"), request={"timeout": "3s"})]})
        stored = pipeline.definition("old")
        refused = {**stored, "name": "bell \x07 in a name", "tags": ["x" * 100]}
        request = RunRequest(uuid.uuid4(), refused, "eu-west-1", datetime.now(UTC))
        BatchSender(pipeline.settings).send([run_request_message(request, pipeline.settings)])
        (row,) = wait_until(
            lambda: pipeline.rows(run_id=request.run_id), 60, 0.5, "the failed result"
        )
        assert (row.status, row.error_kind, row.check_id) == ("failed", "config", "old")
        assert "not valid for this worker (name:" in (row.error or "")
        assert target.hits == []  # nothing of the refused definition ran

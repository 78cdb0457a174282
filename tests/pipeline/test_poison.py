"""Poison and foreign messages end in their DLQ while good messages keep flowing;
``synmon dlq`` shows them, and replays a run once its cause is repaired."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.execution.runs import RunRequest
from app.pipeline.dispatch import run_request_message
from app.pipeline.queues import queue_name
from app.pipeline.sqs import BatchSender, celery_task_body, client, queue_urls
from app.pipeline.wire import encode_run_request, result_body
from tests.support.faults import FAST_QUEUES, assert_exactly_once, send_runs
from tests.support.pipeline import Pipeline, http_check, running_pipeline
from tests.support.processes import wait_until
from tests.support.results import run_result
from tests.support.servers import TargetServer, http_target

pytestmark = [pytest.mark.slow, pytest.mark.processes]


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


def depth(pipeline: Pipeline, name: str) -> int:
    attributes = client(pipeline.settings).get_queue_attributes(
        QueueUrl=queue_urls(pipeline.settings)(name),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def raw_send(pipeline: Pipeline, queue: str, body: str) -> None:
    client(pipeline.settings).send_message(
        QueueUrl=queue_urls(pipeline.settings)(queue), MessageBody=body
    )


def test_poison_lands_in_the_dlq_while_good_runs_flow(target: TargetServer, tmp_path: Path) -> None:
    env = {**FAST_QUEUES, "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{target.port}"}
    with running_pipeline(tmp_path, env, beat=False) as pipeline:
        pipeline.sync(
            {"checks": [http_check("good", target.url("/ok"), request={"timeout": "5s"})]}
        )
        definition = pipeline.definition("good")
        settings = pipeline.settings
        run_queue = queue_name(settings, "run", "eu-west-1", "http")
        results = queue_name(settings, "results")
        valid = encode_run_request(
            RunRequest(uuid.uuid4(), definition, "eu-west-1", datetime.now(UTC)), 2
        )

        def task(arguments: Any, name: str = "synmon.run_http") -> str:
            return celery_task_body(name, json.dumps(arguments), run_queue)

        poison_runs = {
            "malformed JSON": "{this is not json",
            "unknown version": task({**valid, "v": 99}),
            "missing field": task({k: v for k, v in valid.items() if k != "schedule"}),
            "oversized payload": task({**valid, "check": {**definition, "padding": "x" * 200_000}}),
            "unknown task name": task(valid, "synmon.no_such_task"),
            "not a task at all": base64.b64encode(json.dumps({"hello": "world"}).encode()).decode(),
        }
        good_ids = send_runs(settings, definition, 10)
        for body in poison_runs.values():
            raw_send(pipeline, run_queue, body)
        raw_send(pipeline, results, "]] not json either")
        raw_send(
            pipeline, results, json.dumps({"v": 7, "run_id": str(uuid.uuid4()), "check_id": "x"})
        )
        # Readable, but the database refuses it (check ids are 64 characters at most).
        raw_send(pipeline, results, result_body(run_result(check_id="x" * 100), 2))
        good_ids += send_runs(settings, definition, 10)

        assert_exactly_once(pipeline, good_ids)
        wait_until(
            lambda: depth(pipeline, run_queue + "-dlq") == len(poison_runs),
            120,
            1,
            "every poison run request in the DLQ",
        )
        wait_until(
            lambda: depth(pipeline, results + "-dlq") == 3, 120, 1, "the poison results in the DLQ"
        )
        assert depth(pipeline, run_queue) == 0 and depth(pipeline, results) == 0
        worker = dict(pipeline.synmon.processes)["worker-eu-west-1-http"]
        assert worker.poll() is None, "a poison message crashed the worker"
        log = pipeline.synmon.log("worker-eu-west-1-http")
        for reason in (
            "unknown message version 99",
            "invalid message: schedule",
            "exceeds the limit",
            "synmon.no_such_task",
        ):
            assert reason in log, reason
        ingest_log = pipeline.synmon.log("ingest")
        assert "rejected a result message" in ingest_log
        assert "the database refused the result: value too long" in ingest_log

        shown = json.loads(pipeline.synmon.command("dlq", "show", run_queue, "--json").stdout)
        kinds = sorted(letter["kind"] for letter in shown)
        assert kinds == ["run request"] * 4 + ["unreadable"] * 2, kinds
        assert any("task synmon.no_such_task" in letter["summary"] for letter in shown)
        assert all(letter["receive_count"] >= 3 for letter in shown)
        assert any("v99" in letter["summary"] for letter in shown)
        listing = pipeline.synmon.command("dlq", "show", results).stdout
        assert "3 message(s) shown" in listing
        # Listing hides nothing: the messages are still there for a redrive or purge.
        assert depth(pipeline, results + "-dlq") == 3
        assert "purged about 3" in pipeline.synmon.command("dlq", "purge", results, "--yes").stdout
        wait_until(lambda: depth(pipeline, results + "-dlq") == 0, 30, 1, "purged")
        refused = pipeline.synmon.command("dlq", "show", "no-such-queue", check=False)
        assert refused.returncode != 0 and "not a queue of this installation" in refused.stderr


def test_redrive_replays_a_run_once_its_cause_is_repaired(tmp_path: Path) -> None:
    from tests.support.pages import PageServer
    from tests.support.servers import serving

    with serving(PageServer()) as site:
        env = {**FAST_QUEUES, "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{site.port}"}
        # A browser worker on a machine without Chromium: every run is a job failure.
        broken = {"SYNMON_CHROMIUM_PATH": "/nonexistent/chromium"}
        with running_pipeline(tmp_path, env, workers=[], beat=False) as pipeline:
            pipeline.synmon.start(
                "broken-worker", "worker", "-l", "eu-west-1", "-k", "browser", "-c", "1", env=broken
            )
            pipeline.sync(
                {
                    "checks": [
                        {
                            "id": "page",
                            "type": "browser",
                            "frequency": "24h",
                            "locations": ["eu-west-1"],
                            "browser": {"steps": [{"goto": site.url("/trivial")}]},
                        }
                    ]
                }
            )
            request = RunRequest(
                uuid.uuid4(), pipeline.definition("page"), "eu-west-1", datetime.now(UTC)
            )
            BatchSender(pipeline.settings).send([run_request_message(request, pipeline.settings)])
            queue = queue_name(pipeline.settings, "run", "eu-west-1", "browser")
            wait_until(lambda: depth(pipeline, queue + "-dlq") == 1, 120, 1, "the run in the DLQ")
            assert "cannot start Chromium" in pipeline.synmon.log("broken-worker")
            assert pipeline.rows(run_id=request.run_id) == []
            # The operator repairs the worker, then replays the dead letter.
            pipeline.synmon.stop(dict(pipeline.synmon.processes)["broken-worker"])
            pipeline.synmon.start(
                "repaired-worker", "worker", "-l", "eu-west-1", "-k", "browser", "-c", "1"
            )
            assert (
                "1 message(s) sent back" in pipeline.synmon.command("dlq", "redrive", queue).stdout
            )
            assert_exactly_once(pipeline, [request.run_id])
            (row,) = pipeline.rows(run_id=request.run_id)
            assert row.status == "passed", row.error
            assert depth(pipeline, queue + "-dlq") == 0

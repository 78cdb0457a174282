"""End to end over moto's SQS server and the real Postgres: dispatch -> SQS -> workers ->
results queue -> ingest -> Postgres, with real processes."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from sqlalchemy import func, select

from app.api import trigger, wait_for_runs
from app.execution.runs import RunRequest
from app.pipeline.dispatch import run_request_message
from app.pipeline.schedule import phase
from app.pipeline.sqs import BatchSender, client
from app.storage.db import sessions
from app.storage.models import CheckRunRow
from tests.support.pipeline import Pipeline, http_check, running_pipeline
from tests.support.plain_worker import start_plain_worker
from tests.support.processes import free_port, kill_group, wait_until
from tests.support.servers import TargetServer, http_target, https_target

pytestmark = [pytest.mark.slow, pytest.mark.processes]
LOCATIONS = "eu-west-1,us-east-1"


@dataclass
class Targets:
    plain: TargetServer
    tls: TargetServer
    folder: Path
    closed_port: int  # allowed, but nothing listens there


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    folder = tmp_path_factory.mktemp("pipeline")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    with http_target() as plain, https_target(ca) as tls:
        yield Targets(plain, tls, folder, free_port())


@pytest.fixture(scope="module")
def pipeline(targets: Targets) -> Iterator[Pipeline]:
    env = {
        "SYNMON_LOCATIONS": LOCATIONS,
        "SYNMON_MIN_FREQUENCY": "2",
        "SYNMON_DISPATCH_INTERVAL": "0.5",
        "SYNMON_ALLOWED_TARGETS": ",".join(
            f"127.0.0.1:{port}"
            for port in (targets.plain.port, targets.tls.port, targets.closed_port)
        ),
        "SYNMON_CA_BUNDLE": str(targets.folder / "ca.pem"),
        "SYNMON_VAR_PW": "pipeline-pw-42",
        "SYNMON_VAR_TOKEN": "token-secret-77",
    }
    workers = [(location, "http", 2) for location in LOCATIONS.split(",")]
    with running_pipeline(targets.folder, env, workers) as running:
        yield running


def test_every_kind_of_outcome_end_to_end(pipeline: Pipeline, targets: Targets) -> None:
    t, tls = targets.plain, targets.tls
    every_comparison = [
        {"source": "status_code", "comparison": "equals", "target": 200},
        {"source": "status_code", "comparison": "not_equals", "target": 500},
        {"source": "json_body", "property": "$.count", "comparison": "greater_than", "target": 2},
        {"source": "json_body", "property": "$.count", "comparison": "less_than", "target": 4},
        {"source": "json_body", "property": "$.items", "comparison": "contains", "target": 2},
        {
            "source": "json_body",
            "property": "$.status",
            "comparison": "not_contains",
            "target": "down",
        },
        {"source": "json_body", "property": "$.status", "comparison": "matches", "target": "^ok$"},
        {"source": "json_body", "property": "$.empty", "comparison": "is_empty"},
        {"source": "json_body", "property": "$.items", "comparison": "not_empty"},
        {"source": "json_body", "property": "$.nested", "comparison": "has_key", "target": "flag"},
        {
            "source": "json_body",
            "property": "$.nested",
            "comparison": "not_has_key",
            "target": "nope",
        },
        {"source": "json_body", "property": "$.missing", "comparison": "is_null"},
        {"source": "json_body", "property": "$.status", "comparison": "not_null"},
    ]
    every_source = [
        {"source": "status_code", "comparison": "equals", "target": 200},
        {
            "source": "json_body",
            "property": "$.nested.flag",
            "comparison": "equals",
            "target": True,
        },
        {
            "source": "headers",
            "property": "content-type",
            "comparison": "contains",
            "target": "json",
        },
        {"source": "text_body", "comparison": "matches", "target": '"count": 3'},
        {"source": "response_time", "comparison": "less_than", "target": 5000},
        {
            "source": "tls_certificate",
            "property": "days_until_expiry",
            "comparison": "greater_than",
            "target": 14,
        },
    ]
    checks = [
        http_check("comparisons", t.url("/json"), assertions=every_comparison),
        http_check("sources", tls.url("/json"), assertions=every_source),
        http_check("server-error", t.url("/status/500")),
        http_check("degraded", t.url("/slow?delay=0.4"), degraded_response_time="200ms"),
        http_check("too-slow", t.url("/slow?delay=0.4"), max_response_time="200ms"),
        http_check("timeout", t.url("/hang?delay=5"), request={"timeout": "1s"}),
        http_check("refused", f"http://127.0.0.1:{targets.closed_port}/"),
        http_check("forbidden", "http://10.0.0.1/"),
        http_check("redirect", t.url("/redirect?to=/ok")),
        http_check("big", t.url("/big?size=3000000")),
        http_check(
            "basic-auth",
            t.url("/auth?pw=pipeline-pw-42"),
            request={"basic_auth": {"username": "monitor", "password": "{{PW}}"}},
        ),
        http_check(
            "placeholder",
            t.url("/echo"),
            request={"headers": {"X-Token": "{{TOKEN}}"}},
            assertions=[
                {"source": "json_body", "property": "$.headers.X-Token", "comparison": "not_empty"}
            ],
        ),
        http_check("self-signed", tls.url("/ok"), request={"skip_tls_verify": True}),
    ]
    pipeline.sync({"checks": checks})
    expected = {
        "comparisons": "passed",
        "sources": "passed",
        "server-error": "failed",
        "degraded": "degraded",
        "too-slow": "failed",
        "timeout": "failed",
        "refused": "failed",
        "forbidden": "failed",
        "redirect": "passed",
        "big": "passed",
        "basic-auth": "passed",
        "placeholder": "passed",
        "self-signed": "passed",
    }
    run_ids = {check_id: trigger(check_id, settings=pipeline.settings)[0] for check_id in expected}
    rows = wait_for_runs(list(run_ids.values()), timeout=90, settings=pipeline.settings)
    by_run = {row.run_id: row for row in rows}
    for check_id, status in expected.items():
        row = by_run.get(run_ids[check_id])
        assert row is not None, f"no result for {check_id}"
        assert row.status == status, (check_id, row.error)
        assert len(pipeline.rows(run_id=run_ids[check_id])) == 1
    comparisons = by_run[run_ids["comparisons"]]
    assert len(comparisons.assertions) == 13 and all(a["passed"] for a in comparisons.assertions)
    assert all(a["passed"] for a in by_run[run_ids["sources"]].assertions)
    kinds = {check_id: by_run[run_ids[check_id]].error_kind for check_id in expected}
    assert kinds == {
        **dict.fromkeys(expected),
        "server-error": "assertion",
        "too-slow": "response_time",
        "timeout": "timeout",
        "refused": "network",
        "forbidden": "forbidden_target",
    }
    assert "refused" in (by_run[run_ids["refused"]].error or "")
    assert "not allowed" in (by_run[run_ids["forbidden"]].error or "")
    assert by_run[run_ids["big"]].response["body_truncated"] is True
    stored = json.dumps([r.__dict__ for r in pipeline.rows()], default=str)
    assert "pipeline-pw-42" not in stored and "token-secret-77" not in stored
    worker_logs = pipeline.synmon.log("worker-eu-west-1-http") + pipeline.synmon.log("ingest")
    assert "pipeline-pw-42" not in worker_logs and "token-secret-77" not in worker_logs


def test_scheduled_runs_keep_their_slots(pipeline: Pipeline, targets: Targets) -> None:
    frequency = 3  # the pipeline allows frequencies down to 2 s (SYNMON_MIN_FREQUENCY)
    check = {
        "id": "every-3s",
        "type": "http",
        "frequency": f"{frequency}s",
        "locations": LOCATIONS.split(","),
        "request": {"url": targets.plain.url("/ok")},
    }
    pipeline.sync({"checks": [check]})
    wait_until(
        lambda: len(pipeline.rows(check_id="every-3s")) >= 10,
        timeout=60,
        interval=0.5,
        message="ten scheduled runs",
    )
    rows = pipeline.rows(check_id="every-3s")
    offset = phase("every-3s", frequency)
    for location in LOCATIONS.split(","):
        slots = [r.scheduled_at for r in rows if r.location == location]
        assert len(slots) == len(set(slots)) >= 4
        assert all(b - a == timedelta(seconds=frequency) for a, b in itertools.pairwise(slots))
        for slot in slots:
            since_epoch = (slot - datetime(2020, 1, 1, tzinfo=UTC)).total_seconds() - offset
            assert abs(since_epoch / frequency - round(since_epoch / frequency)) < 1e-6
    for row in rows:
        # Started within a dispatcher tick (0.5 s) and a worker's poll of its slot.
        assert timedelta(0) <= row.started_at - row.scheduled_at < timedelta(seconds=2), row
    pipeline.sync({"checks": []})
    settled = len(pipeline.rows(check_id="every-3s"))
    time.sleep(2 * frequency)
    assert len(pipeline.rows(check_id="every-3s")) <= settled + 2  # at most what was in flight


def test_a_redelivered_run_is_stored_once(pipeline: Pipeline, targets: Targets) -> None:
    pipeline.sync({"checks": [http_check("twice", targets.plain.url("/ok"))]})
    definition = pipeline.definition("twice")
    request = RunRequest(uuid.uuid4(), definition, "eu-west-1", datetime.now(UTC))
    message = run_request_message(request, pipeline.settings)
    BatchSender(pipeline.settings).send([message, message, message])
    wait_for_runs([request.run_id], 60, pipeline.settings)
    wait_until(
        lambda: pipeline.synmon.log("worker-eu-west-1-http").count(str(request.run_id)) >= 3, 30
    )
    with sessions(pipeline.settings.database_url)() as session:
        count = session.scalar(select(func.count()).where(CheckRunRow.run_id == request.run_id))
    assert count == 1


def test_batched_messages_are_plain_celery_task_messages(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    sqs = client(pipeline.settings)
    queue = "plain-celery-check"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    out = tmp_path / "received.jsonl"
    worker = start_plain_worker(
        pipeline.moto.port, queue, url, "-P", "solo", out=out, log_level="warning"
    )
    try:
        from app.pipeline.sqs import Outgoing, celery_task_body

        bodies = [{"n": i, "run_id": str(uuid.uuid4())} for i in range(25)]
        sent = BatchSender(pipeline.settings)
        sent.urls._urls[queue] = url
        sent.send(
            [
                Outgoing(queue, celery_task_body("synmon.run_http", json.dumps(b), queue))
                for b in bodies
            ]
        )
        wait_until(
            lambda: out.exists() and len(out.read_text().splitlines()) == 25,
            timeout=60,
            message="25 tasks consumed by plain Celery",
        )
        received = sorted(
            (json.loads(line) for line in out.read_text().splitlines()), key=lambda b: b["n"]
        )
        assert received == bodies
    finally:
        kill_group(worker)


def test_run_and_runs_commands(pipeline: Pipeline, targets: Targets) -> None:
    pipeline.sync(
        {
            "checks": [
                http_check("cli-ok", targets.plain.url("/ok")),
                http_check("cli-bad", targets.plain.url("/status/500")),
            ]
        }
    )
    ok = pipeline.synmon.command("run", "cli-ok", "--wait", "--timeout", "60")
    assert (
        ok.stdout.startswith("queued run ") and " cli-ok " in ok.stdout and " passed " in ok.stdout
    )
    bad = pipeline.synmon.command("run", "cli-bad", "--wait", "--timeout", "60", check=False)
    assert bad.returncode == 1 and " failed " in bad.stdout and "actual: 500" in bad.stdout
    missing = pipeline.synmon.command("run", "no-such-check", check=False)
    assert missing.returncode != 0 and "no check 'no-such-check'" in missing.stderr
    runs = json.loads(
        pipeline.synmon.command("runs", "--check", "cli-bad", "--since", "5m", "--json").stdout
    )
    assert [r["status"] for r in runs] == ["failed"] and runs[0]["error_kind"] == "assertion"

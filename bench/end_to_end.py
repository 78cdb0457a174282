"""End to end through moto's SQS server: run requests -> worker -> results queue ->
ingest -> Postgres, against trivial Celery tasks (a no-op) through the same endpoint,
with the same pool and the same polling, in the same run."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from app.execution.runs import RunRequest
from app.pipeline.dispatch import run_request_message
from app.pipeline.sqs import BatchSender, Outgoing, celery_task_body, client
from app.storage.db import sessions
from app.storage.models import CheckRunRow
from bench.common import Figure, Size, WrongResult
from bench.http_executor import target
from config.settings import load_settings
from tests.support.pipeline import http_check, running_pipeline
from tests.support.plain_worker import start_plain_worker
from tests.support.processes import MotoServer, kill_group, moto_server, wait_until

SIZES = {"tiny": 40, "full": 400}
CONCURRENCY = 4
GOAL = 0.9
# How often the trivial side asks moto whether its queue is empty: each ask is a request
# to the server both sides are bound by (synmon's side asks Postgres instead), so asking
# every 50 ms took a fifth of moto's requests from the baseline's worker.
POLL_SECONDS = 0.25


def stored(database_url: str, run_ids: list[uuid.UUID]) -> int:
    with sessions(database_url)() as session:
        return int(session.scalar(select(func.count()).where(CheckRunRow.run_id.in_(run_ids))) or 0)


def synmon_rate(count: int, url: str, moto: MotoServer | None = None) -> float:
    folder = Path(tempfile.mkdtemp(prefix="synmon-bench-"))
    port = url.split(":")[2].split("/", maxsplit=1)[0]
    env = {"SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{port}", "SYNMON_LOG_LEVEL": "WARNING"}
    with running_pipeline(
        folder, env, [("eu-west-1", "http", CONCURRENCY)], beat=False, moto=moto
    ) as pipeline:
        pipeline.sync({"checks": [http_check("e2e", url)]})
        definition = pipeline.definition("e2e")
        warm = [
            RunRequest(uuid.uuid4(), definition, "eu-west-1", datetime.now(UTC))
            for _ in range(CONCURRENCY)
        ]
        BatchSender(pipeline.settings).send(
            [run_request_message(r, pipeline.settings) for r in warm]
        )
        wait_until(
            lambda: stored(pipeline.settings.database_url, [r.run_id for r in warm]) == len(warm),
            60,
        )
        requests = [
            RunRequest(uuid.uuid4(), definition, "eu-west-1", datetime.now(UTC))
            for _ in range(count)
        ]
        started = time.perf_counter()
        BatchSender(pipeline.settings).send(
            [run_request_message(r, pipeline.settings) for r in requests]
        )
        ids = [r.run_id for r in requests]
        wait_until(
            lambda: stored(pipeline.settings.database_url, ids) >= count,
            170,
            0.05,
            "results stored",
        )
        seconds = time.perf_counter() - started
        time.sleep(1)
        if stored(pipeline.settings.database_url, ids) != count:
            raise WrongResult(
                f"{stored(pipeline.settings.database_url, ids)} results for {count} runs"
            )
        rows = pipeline.rows(check_id="e2e")
        if any(r.status != "passed" for r in rows):
            raise WrongResult("a benchmark run did not pass")
        return count / seconds


def trivial_rate(count: int, moto: MotoServer | None = None) -> float:
    with ExitStack() as stack:
        if moto is None:
            moto = stack.enter_context(moto_server())
        settings = load_settings({"SYNMON_SQS_ENDPOINT": moto.endpoint})
        queue = "trivial"
        url = client(settings).create_queue(QueueName=queue)["QueueUrl"]
        # The pool synmon's HTTP workers use (threads by default since SYNMON_HTTP_POOL):
        # Celery's own default, prefork, would compare four processes with four threads.
        pool = settings.http_pool
        worker = start_plain_worker(
            moto.port, queue, url, "-P", pool, "-c", str(CONCURRENCY), "-O", "fair"
        )
        sender = BatchSender(settings)
        sender.urls._urls[queue] = url

        def pending() -> int:
            attributes = client(settings).get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            return int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            )

        try:

            def send(n: int) -> None:
                sender.send(
                    [
                        Outgoing(
                            queue, celery_task_body("trivial.noop", json.dumps({"n": i}), queue)
                        )
                        for i in range(n)
                    ]
                )

            send(CONCURRENCY)
            wait_until(lambda: pending() == 0, 60, 0.1, "trivial warm-up")
            started = time.perf_counter()
            send(count)
            time.sleep(0.2)
            wait_until(lambda: pending() == 0, 170, POLL_SECONDS, "trivial tasks done")
            return count / (time.perf_counter() - started)
        finally:
            kill_group(worker)


def run(size: Size) -> list[Figure]:
    count = SIZES[size]
    # One moto server for both, one after the other.
    with moto_server() as moto:
        with target() as url:
            synmon = synmon_rate(count, url, moto)
        trivial = trivial_rate(count, moto)
    ratio = synmon / trivial
    return [
        Figure(
            "end-to-end",
            f"{count} runs to stored results, {CONCURRENCY} slots ({load_settings({}).http_pool})",
            "runs/s",
            synmon,
            trivial,
            "no-op Celery tasks through the same moto endpoint, same pool and polling",
            goal=f">= {GOAL} of the trivial rate",
            met=ratio >= GOAL if size == "full" else None,
            notes=[
                "synmon's path has one more queue hop (results) and the database; moto sets the pace",
                "both through one moto server, one after the other",
            ],
        )
    ]

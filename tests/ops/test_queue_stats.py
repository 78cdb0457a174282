"""``synmon queues`` against known queue states on moto's SQS server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.ops.queue_stats import all_stats
from app.pipeline.queues import queue_name
from app.pipeline.sqs import client, create_queues, queue_urls
from config.settings import Settings
from tests.support.processes import MotoServer, Synmon, moto_server
from tests.support.settings import make_settings

pytestmark = pytest.mark.processes


@pytest.fixture
def queues(tmp_path: Path) -> Iterator[tuple[Settings, MotoServer]]:
    with moto_server() as moto:
        settings = make_settings(
            SYNMON_SQS_ENDPOINT=moto.endpoint,
            SYNMON_LOCATIONS="eu-west-1",
            SYNMON_SQS_MAX_RECEIVE_COUNT="1",
        )
        create_queues(settings)
        yield settings, moto


def test_visible_in_flight_delayed_and_dead_letters(
    queues: tuple[Settings, MotoServer], tmp_path: Path
) -> None:
    settings, moto = queues
    sqs = client(settings)
    run_queue = queue_name(settings, "run", "eu-west-1", "http")
    url = queue_urls(settings)(run_queue)
    for index in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{index}")
    sqs.send_message(QueueUrl=url, MessageBody="retry later", DelaySeconds=600)
    sqs.send_message(QueueUrl=url, MessageBody="retry later too", DelaySeconds=600)
    held = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=600)[
        "Messages"
    ]
    assert len(held) == 2
    # One message to the DLQ: received once (maxReceiveCount 1), then received again.
    results = queue_urls(settings)(queue_name(settings, "results"))
    sqs.send_message(QueueUrl=results, MessageBody="poison")
    sqs.receive_message(QueueUrl=results, VisibilityTimeout=0)
    time.sleep(1.5)
    for _ in range(5):
        sqs.receive_message(QueueUrl=results, VisibilityTimeout=0)
    stats = {s.name: s for s in all_stats(settings)}
    run = stats[run_queue]
    assert (run.visible, run.in_flight, run.delayed) == (3, 2, 2)
    dlq = stats[queue_name(settings, "results", dead_letter=True)]
    assert dlq.dead_letter and dlq.visible == 1
    assert dlq.oldest_age_s is not None and 1.0 <= dlq.oldest_age_s < 60
    assert stats[queue_name(settings, "results")].visible == 0

    synmon = Synmon(
        {
            "SYNMON_SQS_ENDPOINT": moto.endpoint,
            "SYNMON_ENV": "test",
            "SYNMON_LOCATIONS": "eu-west-1",
            "SYNMON_DATA_DIR": str(tmp_path),
        },
        tmp_path,
    )
    document = {q["name"]: q for q in json.loads(synmon.command("queues", "--json").stdout)}
    assert document[run_queue] | {} == {
        "name": run_queue,
        "dead_letter": False,
        "visible": 3,
        "in_flight": 2,
        "delayed": 2,
        "oldest_age_s": None,
    }
    table = synmon.command("queues").stdout
    line = next(row for row in table.splitlines() if row.startswith(run_queue + " "))
    assert line.split()[1:5] == ["3", "2", "2", "-"]
    dlq_line = next(row for row in table.splitlines() if row.startswith("synmon-test-results-dlq"))
    assert dlq_line.split()[1] == "1" and dlq_line.split()[4].endswith("s")

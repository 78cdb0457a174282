"""A plain Celery app, with none of synmon's code, configured from the environment:
it proves that batched messages are ordinary Celery task messages (tests), and is the
trivial-task baseline of the benchmarks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from celery import Celery

QUEUE = os.environ["PLAIN_QUEUE"]
app = Celery("plain")
app.conf.update(
    broker_url=os.environ["PLAIN_BROKER"],
    broker_transport_options={
        "region": "us-east-1",
        "is_secure": False,
        "predefined_queues": {
            QUEUE: {
                "url": os.environ["PLAIN_QUEUE_URL"],
                "access_key_id": "test",
                "secret_access_key": "test",
            }
        },
        "wait_time_seconds": 1,
        "polling_interval": 0.1,
    },
    task_default_queue=QUEUE,
    # The same delivery settings as synmon's workers, so that the baseline is fair.
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    worker_enable_remote_control=False,
    accept_content=["json"],
)


@app.task(name="synmon.run_http")
def run_http(request: dict[str, Any]) -> None:
    """Records what it was given, to PLAIN_OUT."""
    with Path(os.environ["PLAIN_OUT"]).open("a") as out:
        out.write(json.dumps(request) + "\n")


@app.task(name="trivial.noop")
def noop(argument: object) -> None:
    return None

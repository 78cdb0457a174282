"""Trivial Celery tasks through the same SQS endpoint: the end-to-end baseline.
Configured from the environment by bench/end_to_end.py."""

from __future__ import annotations

import os

from celery import Celery

QUEUE = os.environ["TRIVIAL_QUEUE"]
app = Celery("trivial")
app.conf.update(
    broker_url=os.environ["TRIVIAL_BROKER"],
    broker_transport_options={
        "region": "us-east-1",
        "is_secure": False,
        "predefined_queues": {
            QUEUE: {
                "url": os.environ["TRIVIAL_QUEUE_URL"],
                "access_key_id": "test",
                "secret_access_key": "test",
            }
        },
        "wait_time_seconds": 1,
        "polling_interval": 0.1,
    },
    task_default_queue=QUEUE,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    worker_enable_remote_control=False,
    accept_content=["json"],
)


@app.task(name="trivial.noop")
def noop(argument: object) -> None:
    return None

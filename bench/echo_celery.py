"""The capacity benchmark's ceiling of the queue: a plain Celery app, with none of
synmon's code, whose ``synmon.run_http`` runs no check and publishes the run id to a
results queue at once. Its messages take the same SQS requests as a check's (receive,
result send, delete), so that what it reaches is what the SQS endpoint can carry.

Configured from the environment by bench/capacity.py (ECHO_*), with synmon's delivery
and transport settings: acks late, prefetch 1, the same long polling, the same
connection pool size.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
from botocore.config import Config
from celery import Celery

QUEUE = os.environ["ECHO_QUEUE"]
POOL_CONNECTIONS = int(os.environ["ECHO_POOL_CONNECTIONS"])

app = Celery("echo")
app.conf.update(
    broker_url=os.environ["ECHO_BROKER"],
    broker_transport_options={
        "region": "us-east-1",
        "is_secure": False,
        "predefined_queues": {
            QUEUE: {
                "url": os.environ["ECHO_QUEUE_URL"],
                "access_key_id": "test",
                "secret_access_key": "test",
            }
        },
        "wait_time_seconds": int(os.environ["ECHO_WAIT_TIME_SECONDS"]),
        "polling_interval": float(os.environ["ECHO_POLLING_INTERVAL"]),
        "client-config": {"max_pool_connections": POOL_CONNECTIONS},
    },
    task_default_queue=QUEUE,
    task_acks_late=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    worker_enable_remote_control=False,
    worker_hijack_root_logger=False,
    accept_content=["json"],
)

# One client for every thread (boto3 clients are thread-safe), as synmon's workers have.
results = boto3.client(
    "sqs",
    region_name="us-east-1",
    endpoint_url=os.environ["ECHO_ENDPOINT"],
    aws_access_key_id="test",
    aws_secret_access_key="test",
    config=Config(max_pool_connections=POOL_CONNECTIONS),
)
RESULTS_URL = os.environ["ECHO_RESULTS_URL"]


@app.task(name="synmon.run_http")  # type: ignore[untyped-decorator]  # Celery is untyped
def run_http(request: dict[str, Any]) -> None:
    results.send_message(
        QueueUrl=RESULTS_URL,
        MessageBody=json.dumps({"run_id": request["run_id"], "status": "passed"}),
    )

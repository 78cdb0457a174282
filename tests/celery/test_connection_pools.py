"""A worker's connections to SQS are sized for the checks it keeps in flight: each run
publishes its result through synmon's client and is acknowledged through kombu's."""

from __future__ import annotations

from app.celery.config import celery_config
from app.pipeline.sqs import client
from tests.support.settings import make_settings


def test_both_sqs_clients_keep_a_connection_per_check_in_flight() -> None:
    settings = make_settings(
        SYNMON_HTTP_CONCURRENCY="200", SYNMON_SQS_ENDPOINT="http://127.0.0.1:9"
    )
    ours = client(settings)._client_config.max_pool_connections
    kombus = celery_config(settings, {})["broker_transport_options"]["client-config"]
    assert ours == kombus["max_pool_connections"] == 210


def test_a_small_worker_keeps_at_least_32() -> None:
    # Another endpoint: clients are kept per process, endpoint and region.
    settings = make_settings(SYNMON_HTTP_CONCURRENCY="2", SYNMON_SQS_ENDPOINT="http://127.0.0.1:10")
    assert client(settings)._client_config.max_pool_connections == 32

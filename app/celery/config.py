"""Celery's configuration, built from ``Settings`` and the resolved queue URLs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from app.pipeline.queues import queue_name, queue_region
from app.pipeline.sqs import connection_pool_size
from config.celery import DISPATCH_TASK, PRUNE_INTERVAL_SECONDS, PRUNE_TASK, RUN_TASKS
from config.settings import Settings


def broker_url(settings: Settings) -> str:
    """kombu has no endpoint option: a local SQS endpoint goes in the URL's host."""
    if settings.sqs_endpoint is None:
        return "sqs://"
    parts = urlsplit(settings.sqs_endpoint)
    port = f":{parts.port}" if parts.port else ""
    return f"sqs://test:test@{parts.hostname}{port}"


def route_task(
    name: str,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    options: Mapping[str, Any],
    task: Any = None,
    **kw: Any,
) -> dict[str, str] | None:
    """Route run requests to their location's queue; everything else to dispatch."""
    from config.settings import get_settings

    settings = get_settings()
    for kind, task_name in RUN_TASKS.items():
        if name == task_name:
            request = args[0] if args else kwargs.get("request", {})
            return {"queue": queue_name(settings, "run", request["location"], kind)}  # type: ignore[arg-type]
    if name in (DISPATCH_TASK, PRUNE_TASK):
        return {"queue": queue_name(settings, "dispatch")}
    return None


def celery_config(settings: Settings, queue_urls: Mapping[str, str]) -> dict[str, Any]:
    """The whole Celery configuration. ``queue_urls`` maps every queue name to its URL."""
    # No kombu backoff_policy: with it, kombu 5.7 raises KeyError('sqs_message') when a
    # pool process is lost (its requeue drops the field the policy reads) and the whole
    # worker stops. app/celery/worker.py applies JOB_BACKOFF_SECONDS itself.
    predefined = {
        name: {
            "url": url,
            "region": queue_region(settings, name),
            "access_key_id": "test" if settings.sqs_endpoint else None,
            "secret_access_key": "test" if settings.sqs_endpoint else None,
        }
        for name, url in queue_urls.items()
    }
    if settings.sqs_endpoint is None:
        for queue in predefined.values():
            # On AWS the credentials come from the instance role, not from the config.
            del queue["access_key_id"], queue["secret_access_key"]
    transport_options: dict[str, Any] = {
        "region": settings.sqs_region,
        "predefined_queues": predefined,
        "wait_time_seconds": settings.sqs_wait_time_seconds,
        "polling_interval": settings.sqs_polling_interval,
        "fetch_message_attributes": ["ApproximateReceiveCount"],
        # kombu's own client deletes each message a task acks: with botocore's default of
        # 10 connections, a threads pool of 100 would queue its acks behind each other.
        "client-config": {"max_pool_connections": connection_pool_size(settings)},
    }
    if settings.sqs_endpoint is not None:
        transport_options["is_secure"] = settings.sqs_endpoint.startswith("https")
    side_channel = settings.events_url is not None
    dispatch_queue = queue_name(settings, "dispatch")
    return {
        "broker_url": broker_url(settings),
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "result_backend": None,
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": False,
        # A job is acknowledged (deleted from SQS) only after it finished without error.
        "task_acks_late": True,
        "task_acks_on_failure_or_timeout": False,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # SQS has neither broadcast nor events. Celery's own remote control would leave
        # reply queues behind on SQS and never answer: it stays off, and app/celery/side_channel.py
        # answers over the side channel instead, when there is one.
        "worker_enable_remote_control": False,
        "worker_send_task_events": side_channel,
        "task_send_sent_event": side_channel,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "task_default_queue": dispatch_queue,
        "task_create_missing_queues": True,
        "task_routes": (route_task,),
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": {
            "dispatch-due-checks": {
                "task": DISPATCH_TASK,
                "schedule": settings.dispatch_interval,
                # A tick that waited longer than its interval is worthless: the next
                # one selects the same due checks.
                "options": {"expires": max(settings.dispatch_interval * 3, 5.0)},
            },
            "prune-expired-history": {
                "task": PRUNE_TASK,
                "schedule": PRUNE_INTERVAL_SECONDS,
                # A pass still queued when the next is due would only repeat it.
                "options": {"expires": PRUNE_INTERVAL_SECONDS},
            },
        },
        "worker_consumer": "app.celery.worker:SynmonConsumer",
    }

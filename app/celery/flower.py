"""The Celery app Flower runs with: it speaks only to the side channel (app/celery/side_channel.py),
where synmon workers send their events and answer remote control."""

from __future__ import annotations

from celery import Celery

from app.celery.side_channel import broker_url, transport_options
from config.settings import get_settings

_settings = get_settings()
if _settings.events_url is None:
    raise SystemExit("Flower needs SYNMON_EVENTS_URL: SQS carries no Celery events")

app = Celery("synmon-flower")
app.conf.update(
    broker_url=broker_url(_settings.events_url),
    broker_transport_options=transport_options(_settings.events_url),
    accept_content=["json"],
    task_serializer="json",
    result_backend=None,
    broker_connection_retry_on_startup=True,
)

"""The dispatch task that celery beat triggers every few seconds."""

from __future__ import annotations

from app.celery import app
from app.pipeline.dispatch import dispatch_due
from app.storage.db import sessions
from config.settings import get_settings


# Acknowledged on receipt: a lost tick costs nothing, the next one selects the same checks.
@app.task(name="synmon.dispatch", acks_late=False)
def dispatch() -> int:
    settings = get_settings()
    return len(dispatch_due(sessions(settings.database_url), settings).runs)

"""The storage-maintenance task that celery beat triggers every minute, each a bounded
pass: partitions of the days ahead created (Postgres), then retention."""

from __future__ import annotations

from app.celery import app
from app.execution.artifacts import store_for
from app.pipeline.retention import maintain_now
from app.storage.db import sessions
from config.celery import PRUNE_BUDGET_SECONDS, PRUNE_TASK
from config.settings import get_settings


# Acknowledged on receipt, like dispatch: a lost or doubled pass costs nothing, the next
# one removes what this one did not, and two at once remove each row once.
@app.task(name=PRUNE_TASK, acks_late=False)
def prune() -> dict[str, int]:
    settings = get_settings()
    Session = sessions(settings.database_url)
    return maintain_now(Session, settings, store_for(settings), PRUNE_BUDGET_SECONDS).as_dict()

"""synmon from Python: ``from app.api import trigger``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select

from app.execution.runs import RunRequest
from app.pipeline.dispatch import run_request_message
from app.pipeline.sqs import BatchSender
from app.storage.db import sessions
from app.storage.models import CheckRow, CheckRunRow
from config.errors import SynmonError
from config.settings import Settings, get_settings


class UnknownCheck(SynmonError, LookupError):
    pass


def trigger(
    check_id: str, location: str | None = None, settings: Settings | None = None
) -> list[uuid.UUID]:
    """Run a check now, through the queues, in ``location`` or in all its locations.

    Returns the run ids; the results arrive in ``check_runs`` like any other run's.
    """
    settings = settings or get_settings()
    with sessions(settings.database_url)() as session:
        row = session.get(CheckRow, check_id)
        if row is None:
            raise UnknownCheck(f"no check {check_id!r}; `synmon sync` adds checks")
        definition, locations = row.definition, list(row.locations)
    if location is not None:
        if location not in settings.locations:
            raise UnknownCheck(
                f"no location {location!r}; this installation runs {settings.locations}"
            )
        locations = [location]
    now = datetime.now(UTC)
    requests = [
        RunRequest(
            run_id=uuid.uuid4(),
            check=definition,
            location=loc,
            scheduled_at=now,
            trigger="manual",
            dispatched_at=now,
        )
        for loc in locations
    ]
    BatchSender(settings).send([run_request_message(r, settings) for r in requests])
    return [r.run_id for r in requests]


def wait_for_runs(
    run_ids: Sequence[uuid.UUID], timeout: float = 120.0, settings: Settings | None = None
) -> list[CheckRunRow]:
    """The stored results of ``run_ids`` (final attempts included), waiting up to ``timeout``."""
    settings = settings or get_settings()
    deadline = time.monotonic() + timeout
    Session = sessions(settings.database_url)
    wanted = set(run_ids)
    while True:
        with Session() as session:
            rows = session.scalars(
                select(CheckRunRow)
                .where(CheckRunRow.root_run_id.in_(wanted))
                .order_by(CheckRunRow.id)
            ).all()
        done = {r.root_run_id for r in rows if r.final}
        if done >= wanted or time.monotonic() > deadline:
            return list(rows)
        time.sleep(0.25)

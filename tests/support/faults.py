"""Runs sent straight to the queues and counted once stored, for the fault tests."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import select

from app.execution.runs import RunRequest
from app.pipeline.dispatch import run_request_message
from app.pipeline.sqs import BatchSender
from app.storage.db import sessions
from app.storage.models import CheckRunRow
from config.settings import Settings
from tests.support.pipeline import Pipeline
from tests.support.processes import wait_until

# An 8 s visibility timeout (5 s longest check + 3 s margin), so that a message held by
# a killed worker comes back within a test's patience.
FAST_QUEUES = {"SYNMON_HTTP_MAX_TIMEOUT": "5", "SYNMON_SQS_VISIBILITY_MARGIN": "3"}


def send_runs(settings: Settings, definition: dict[str, object], count: int) -> list[uuid.UUID]:
    """``count`` manual runs of ``definition`` in eu-west-1, sent in batches; their ids."""
    requests = [
        RunRequest(uuid.uuid4(), definition, "eu-west-1", datetime.now(UTC), trigger="manual")
        for _ in range(count)
    ]
    BatchSender(settings).send([run_request_message(r, settings) for r in requests])
    return [r.run_id for r in requests]


def stored_counts(pipeline: Pipeline, run_ids: list[uuid.UUID]) -> Counter[uuid.UUID]:
    """How many stored results each of ``run_ids`` has (absent: none)."""
    with sessions(pipeline.settings.database_url)() as session:
        found = session.scalars(
            select(CheckRunRow.run_id).where(CheckRunRow.run_id.in_(run_ids))
        ).all()
    return Counter(found)


def assert_exactly_once(pipeline: Pipeline, run_ids: list[uuid.UUID], timeout: float = 120) -> None:
    """Every one of ``run_ids`` ends as exactly one stored result: none lost, none doubled."""
    wanted = set(run_ids)
    wait_until(
        lambda: set(stored_counts(pipeline, run_ids)) >= wanted,
        timeout,
        0.5,
        f"{len(run_ids)} results stored",
    )
    time.sleep(2)  # anything doubled would arrive now
    counts = stored_counts(pipeline, run_ids)
    assert set(counts) == wanted, f"lost: {len(wanted - set(counts))}"
    assert max(counts.values()) == 1, f"doubled: {[i for i, c in counts.items() if c > 1]}"

"""Results as a worker would send them, for the tests that need some."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from app.execution.runs import RunResult
from app.pipeline.ingest import run_row
from app.storage.models import CheckRunRow


def run_result(**overrides: Any) -> RunResult:
    """A passed HTTP result of check ``api`` in eu-west-1, started now; ``overrides`` win."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "run_id": uuid.uuid4(),
        "check_id": "api",
        "kind": "http",
        "location": "eu-west-1",
        "status": "passed",
        "scheduled_at": now,
        "started_at": now,
        "finished_at": now,
        "duration_ms": 1.0,
    }
    values.update(overrides)
    return RunResult(**values)


def stored_run(final: bool = True, **overrides: Any) -> CheckRunRow:
    """The row of ``check_runs`` that ingest stores for ``run_result(**overrides)``."""
    return CheckRunRow(**run_row(run_result(**overrides), final, datetime.now(UTC)))

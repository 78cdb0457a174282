"""``synmon prune [--dry-run] [--json]`` in this process (click's runner), and the beat
entry and route of the periodic ``synmon.prune``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.celery.config import celery_config, route_task
from app.execution.artifacts import FolderStore
from app.pipeline.queues import queue_name
from config.celery import PRUNE_TASK
from config.settings import get_settings
from tests.cli.test_history import invoke
from tests.pipeline.test_ingest import definitions, prepare, result, store
from tests.pipeline.test_retention import counts, with_artifact
from tests.support.settings import make_settings


def test_dry_run_counts_what_prune_then_removes(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, Session = prepare(database_url, definitions())
    folder = FolderStore(tmp_path / "artifacts")
    monkeypatch.setenv("SYNMON_ARTIFACTS_URL", f"file://{folder.root}")
    now = datetime.now(UTC)
    old = with_artifact(folder, result("failed", now - timedelta(days=40)), "old")
    young = with_artifact(folder, result("passed", now - timedelta(days=2)), "young")
    store(Session, settings, [old, young, result("passed", now - timedelta(days=800))], now=now)
    before = counts(Session)

    code, output = invoke(database_url, "prune", "--dry-run", "--json")
    assert code == 0, output
    planned = json.loads(output)
    assert planned == {
        "dry_run": True,
        "runs": 2,
        "artifacts": 1,
        "hourly_rollups": 1,
        "daily_rollups": 1,
        "notifications": 0,
        "outbox": 0,
        "partitions": 0,
    }
    assert counts(Session) == before
    assert (folder.root / old.artifacts[0]["key"]).exists()

    code, output = invoke(database_url, "prune", "--json")
    assert code == 0, output
    assert json.loads(output) == {**planned, "dry_run": False}
    assert counts(Session) == (before[0] - 2, before[1] - 1, before[2] - 1)
    assert not (folder.root / old.artifacts[0]["key"]).exists()
    assert (folder.root / young.artifacts[0]["key"]).exists()

    code, output = invoke(database_url, "prune", "--dry-run")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == "the next pass removes:"
    assert [line.split()[1 if "(sent)" in line else -1] for line in lines[1:]] == ["0"] * 6


def test_prune_is_on_beat_every_minute_and_routed_to_dispatch() -> None:
    settings = make_settings()
    entries = celery_config(settings, {})["beat_schedule"].values()
    (entry,) = [e for e in entries if e["task"] == PRUNE_TASK]
    assert entry["schedule"] == 60.0
    assert route_task(PRUNE_TASK, (), {}, {}) == {"queue": queue_name(get_settings(), "dispatch")}

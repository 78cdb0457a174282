"""Retention: what is older than its setting goes (with its artifacts), what is younger
stays, on SQLite and Postgres, with real folders; two passes at once remove each row once."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.execution.artifacts import FolderStore
from app.execution.runs import RunResult
from app.pipeline.retention import Pruned, plan, prune
from app.storage.models import DAILY_ROLLUPS, HOURLY_ROLLUPS, CheckRunRow
from config.settings import ConfigError, load_settings
from tests.pipeline.test_ingest import NOW, definitions, prepare, result, store

DAY = timedelta(days=1)


def with_artifact(store: FolderStore, run: RunResult, name: str) -> RunResult:
    key = f"{run.check_id}/{run.run_id}/00-{name}.png"
    url = store.put(key, b"png", "image/png")
    run.artifacts.append({"name": name, "key": key, "url": url, "content_type": "image/png"})
    return run


def counts(Session: Any) -> tuple[int, int, int]:
    with Session() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(t))
            for t in (CheckRunRow.__table__, HOURLY_ROLLUPS, DAILY_ROLLUPS)
        )


def planned(Session: Any, settings: Any) -> Pruned:
    with Session() as session:
        return plan(session, settings, NOW)


def test_retention_settings_parse_durations() -> None:
    settings = load_settings({})
    assert (settings.runs_retention, settings.hourly_rollups_retention) == (30 * DAY, 90 * DAY)
    assert settings.daily_rollups_retention == 730 * DAY
    custom = load_settings({"SYNMON_RUNS_RETENTION": "12h", "SYNMON_DAILY_ROLLUPS_RETENTION": "3y"})
    assert (custom.runs_retention, custom.daily_rollups_retention) == (
        timedelta(hours=12),
        3 * 365 * DAY,
    )
    assert load_settings({"SYNMON_HOURLY_ROLLUPS_RETENTION": "45"}).hourly_rollups_retention == (
        45 * DAY
    )
    for wrong in ("30 days", "0d", "-1d", "d"):
        with pytest.raises(ConfigError, match="SYNMON_RUNS_RETENTION"):
            load_settings({"SYNMON_RUNS_RETENTION": wrong})


def test_older_goes_younger_stays_with_artifacts(database_url: str, tmp_path: Path) -> None:
    settings, Session = prepare(database_url, definitions())
    folder = FolderStore(tmp_path / "artifacts")
    # Ages chosen around each default: raw runs 30 days, hours 90 days, days 2 years.
    ages = {"young": 29 * DAY, "run-old": 31 * DAY, "hour-old": 95 * DAY, "day-old": 740 * DAY}
    runs = {
        name: with_artifact(folder, result("passed", NOW - age), name) for name, age in ages.items()
    }
    # A failed run, of another location, goes as a passed one does.
    failed = result("failed", NOW - 31 * DAY, location="us-east-1")
    store(Session, settings, [*runs.values(), failed])
    assert counts(Session) == (5, 5, 5)

    expected = Pruned(runs=4, artifacts=3, hourly_rollups=2, daily_rollups=1)
    assert planned(Session, settings) == expected
    assert counts(Session) == (5, 5, 5)  # the plan removed nothing
    assert prune(Session, settings, folder, NOW) == expected
    assert counts(Session) == (1, 3, 4)
    assert planned(Session, settings) == Pruned()

    with Session() as session:
        (kept,) = session.scalars(select(CheckRunRow))
    assert kept.run_id == runs["young"].run_id
    left = sorted(p.relative_to(folder.root) for p in folder.root.rglob("*") if p.is_file())
    assert left == [Path(runs["young"].artifacts[0]["key"])]
    # The removed runs' folders went with their last artifact; the check's folder stays.
    assert sorted(p.name for p in (folder.root / "api").iterdir()) == [str(runs["young"].run_id)]
    assert prune(Session, settings, folder, NOW) == Pruned()


def test_hours_of_an_unfinished_day_stay(database_url: str, tmp_path: Path) -> None:
    settings, Session = prepare(database_url, definitions())
    settings = settings.with_overrides(
        runs_retention=timedelta(hours=1), hourly_rollups_retention=timedelta(hours=1)
    )
    # NOW is 12:00: 02:00 today is older than an hour but its day is not over.
    today, yesterday = NOW - timedelta(hours=10), NOW - timedelta(hours=14)
    store(Session, settings, [result("passed", today), result("passed", yesterday)])
    expected = Pruned(runs=2, artifacts=0, hourly_rollups=1, daily_rollups=0)
    assert planned(Session, settings) == expected
    assert prune(Session, settings, FolderStore(tmp_path), NOW) == expected
    with Session() as session:
        assert list(session.scalars(select(HOURLY_ROLLUPS.c.bucket_start))) == [
            today.replace(minute=0)
        ]


def test_two_passes_at_once_remove_each_row_once(database_url: str, tmp_path: Path) -> None:
    settings, Session = prepare(database_url, definitions())
    settings = settings.with_overrides(prune_batch_size=7)
    folder = FolderStore(tmp_path / "artifacts")
    old = [
        with_artifact(folder, result("passed", NOW - 40 * DAY - i * timedelta(hours=7)), "s")
        for i in range(120)
    ]
    store(Session, settings, [*old, result("passed", NOW)])
    expected = planned(Session, settings)
    assert (expected.runs, expected.artifacts) == (120, 120)

    outcomes: list[Pruned] = []
    errors: list[BaseException] = []

    def run_pass() -> None:
        try:
            outcomes.append(prune(Session, settings, folder, NOW))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(outcomes) == 2
    total = Pruned(**{k: sum(getattr(o, k) for o in outcomes) for k in expected.as_dict()})
    assert total == expected
    assert counts(Session)[0] == 1
    assert len([p for p in folder.root.rglob("*") if p.is_file()]) == 0


def test_a_pass_stops_when_its_budget_is_spent(database_url: str, tmp_path: Path) -> None:
    settings, Session = prepare(database_url, definitions())
    settings = settings.with_overrides(prune_batch_size=1)
    store(Session, settings, [result("passed", NOW - 40 * DAY - i * DAY) for i in range(3)])
    folder = FolderStore(tmp_path)
    assert prune(Session, settings, folder, NOW, budget=0.0) == Pruned()
    assert prune(Session, settings, folder, NOW, budget=60.0).runs == 3

"""``synmon sync``: idempotent, all or nothing, through the real command."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from app.definitions.loader import load_definitions
from app.pipeline.sync import sync
from app.storage.db import sessions
from app.storage.models import ChannelRow, CheckRow, CheckStateRow
from tests.support.processes import synmon_command
from tests.support.settings import make_settings


def synmon(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SYNMON_DATABASE_URL": database_url,
        "SYNMON_ENV": "test",
        "SYNMON_LOCATIONS": "eu-west-1,us-east-1",
    }
    return synmon_command(*args, env=env)


def write_checks(folder: Path, count: int) -> None:
    channels = [{"id": "ops", "type": "webhook", "url": "https://hooks.example.com/x"}]
    per_file = 50
    for start in range(0, count, per_file):
        checks = [
            {
                "id": f"check-{i:03d}",
                "type": "http",
                "frequency": "1m",
                "locations": ["eu-west-1", "us-east-1"][: 1 + i % 2],
                "request": {"url": f"https://api.example.com/{i}"},
                "assertions": [{"source": "status_code", "comparison": "equals", "target": 200}],
                "alert": {"channels": ["ops"]},
            }
            for i in range(start, min(count, start + per_file))
        ]
        document = {"checks": checks, **({"channels": channels} if start == 0 else {})}
        (folder / f"checks-{start:03d}.yaml").write_text(yaml.safe_dump(document))


def count(database_url: str, model: type) -> int:
    with sessions(database_url)() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.processes
def test_two_hundred_checks_sync_idempotently(database_url: str, tmp_path: Path) -> None:
    write_checks(tmp_path, 200)
    first = synmon(database_url, "sync", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "applied: 201 to create, 0 to update, 0 to remove, 0 unchanged" in first.stdout
    assert count(database_url, CheckRow) == 200
    assert count(database_url, ChannelRow) == 1
    second = synmon(database_url, "sync", str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("no changes: 201 definition(s) already up to date")


@pytest.mark.processes
def test_one_bad_check_among_good_ones_applies_nothing(database_url: str, tmp_path: Path) -> None:
    write_checks(tmp_path, 100)
    bad = yaml.safe_load((tmp_path / "checks-050.yaml").read_text())
    bad["checks"][7]["request"]["timeout"] = "2 seconds"
    (tmp_path / "checks-050.yaml").write_text(yaml.safe_dump(bad))
    result = synmon(database_url, "sync", str(tmp_path))
    assert result.returncode != 0
    assert "checks-050.yaml: check 'check-057': request.timeout:" in result.stderr
    assert count(database_url, CheckRow) == 0 and count(database_url, ChannelRow) == 0


@pytest.mark.processes
def test_updates_and_removals_are_reported(database_url: str, tmp_path: Path) -> None:
    write_checks(tmp_path, 60)
    assert synmon(database_url, "sync", str(tmp_path)).returncode == 0
    (tmp_path / "checks-050.yaml").unlink()
    document = yaml.safe_load((tmp_path / "checks-000.yaml").read_text())
    document["checks"][0]["frequency"] = "5m"
    (tmp_path / "checks-000.yaml").write_text(yaml.safe_dump(document))

    dry = synmon(database_url, "sync", "--dry-run", str(tmp_path))
    assert dry.returncode == 0, dry.stderr
    assert "update check check-000 (frequency)" in dry.stdout
    assert "remove check check-055" in dry.stdout
    assert "dry run, nothing applied" in dry.stdout
    assert count(database_url, CheckRow) == 60

    applied = synmon(database_url, "sync", str(tmp_path))
    assert "1 to update, 10 to remove" in applied.stdout
    assert count(database_url, CheckRow) == 50
    with sessions(database_url)() as session:
        row = session.get(CheckRow, "check-000")
        assert row is not None and row.frequency_s == 300


def test_resync_keeps_the_schedule_and_a_frequency_change_moves_it(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings()
    write_checks(tmp_path, 2)
    Session = sessions(database_url)
    with Session() as session:
        sync(session, load_definitions(tmp_path, settings))
    with Session() as session:
        before = {r.id: r.next_run_at for r in session.scalars(select(CheckRow))}
    document = yaml.safe_load((tmp_path / "checks-000.yaml").read_text())
    document["checks"][1]["request"]["url"] = "https://api.example.com/changed"
    document["checks"][0]["frequency"] = "10m"
    (tmp_path / "checks-000.yaml").write_text(yaml.safe_dump(document))
    with Session() as session:
        plan = sync(session, load_definitions(tmp_path, settings))
    assert {c.id for c in plan.changes} == {"check-000", "check-001"}
    with Session() as session:
        after = {r.id: r.next_run_at for r in session.scalars(select(CheckRow))}
    assert after["check-001"] == before["check-001"]


def test_removing_a_check_forgets_its_state(database_url: str, tmp_path: Path) -> None:
    settings = make_settings()
    write_checks(tmp_path, 1)
    Session = sessions(database_url)
    with Session() as session:
        sync(session, load_definitions(tmp_path, settings))
    with Session.begin() as session:
        session.add(CheckStateRow(check_id="check-000", status="failing", consecutive_failures=3))
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "checks-000.yaml").write_text(
        yaml.safe_dump(
            {"channels": [{"id": "ops", "type": "webhook", "url": "https://h.example.com"}]}
        )
    )
    with Session() as session:
        sync(session, load_definitions(tmp_path, settings))
    assert count(database_url, CheckStateRow) == 0 and count(database_url, CheckRow) == 0

"""Two releases side by side: both message versions read by every consumer, and a schema
migrated expand-then-contract so that the older release keeps working against it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import select

from app.execution.runs import RunRequest
from app.pipeline.check_cache import CheckCache
from app.pipeline.dispatch import run_request_message
from app.pipeline.ingest import run_row, store_results
from app.pipeline.queues import queue_name
from app.pipeline.sqs import BatchSender, Outgoing, celery_task_body
from app.storage.db import (
    alembic_config,
    current_revision,
    downgrade,
    engine_for,
    migrate,
    sessions,
)
from app.storage.models import CheckRunRow
from tests.support.databases import database
from tests.support.pipeline import Pipeline, http_check, running_pipeline
from tests.support.results import run_result
from tests.support.servers import TargetServer, http_target
from tests.support.settings import make_settings


@pytest.fixture(params=["sqlite", "postgres"])
def old_schema(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at the schema of the release before 0002."""
    with database(request.param, tmp_path, migrated=False) as url:
        migrate(url, "0001")
        yield url


def head_revision() -> str:
    (head,) = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    return str(head)


def insert_like_the_old_release(url: str) -> uuid.UUID:
    """The previous release's insert: the columns of 0001, nothing else."""
    table = sa.Table("check_runs", sa.MetaData(), autoload_with=engine_for(url))
    row = run_row(run_result(check_id="old", message_version=1), True, datetime.now(UTC))
    del row["trigger"]  # added by 0002: the previous release does not know it
    run_id: uuid.UUID = row["run_id"]
    if engine_for(url).dialect.name == "sqlite":
        row = {
            k: (v.replace(tzinfo=None) if isinstance(v, datetime) else v) for k, v in row.items()
        }
        row = {
            k: (str(v).replace("-", "") if isinstance(v, uuid.UUID) else v) for k, v in row.items()
        }
    with engine_for(url).begin() as connection:
        connection.execute(table.insert().values(**row))
    return run_id


def test_the_old_release_keeps_working_against_the_expanded_schema(old_schema: str) -> None:
    before = insert_like_the_old_release(old_schema)
    migrate(old_schema)
    assert current_revision(old_schema) == head_revision()
    expected = {before: None}
    # On SQLite nothing rolls (`synmon up` runs one release), and 0007 moved its runs into
    # `runs`; on Postgres the old table is a partition the old release still writes.
    if engine_for(old_schema).dialect.name == "postgresql":
        during = insert_like_the_old_release(old_schema)  # old code, new schema
        expected[during] = None
    new = run_result(check_id="new", trigger="manual")
    with sessions(old_schema).begin() as session:
        store_results(session, [new], make_settings(), CheckCache())
    expected[new.run_id] = "manual"
    with sessions(old_schema)() as session:
        triggers = dict(session.execute(select(CheckRunRow.run_id, CheckRunRow.trigger)).all())
    assert triggers == expected
    downgrade(old_schema, "0001")  # a rollback of the release is possible with data in place
    assert current_revision(old_schema) == "0001"


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


@pytest.fixture(scope="module")
def mixed(target: TargetServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """A v1 release (workers in eu-west-1, ingest) beside a v2 release (workers in us-east-1)."""
    env = {
        "SYNMON_LOCATIONS": "eu-west-1,us-east-1",
        "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{target.port}",
        "SYNMON_MESSAGE_VERSION": "1",
        "SYNMON_RELEASE": "v1",
    }
    with running_pipeline(
        tmp_path_factory.mktemp("versions"), env, [("eu-west-1", "http", 1)], beat=False
    ) as pipeline:
        pipeline.synmon.start(
            "worker-v2",
            "worker",
            "-l",
            "us-east-1",
            "-k",
            "http",
            "-c",
            "1",
            env={"SYNMON_MESSAGE_VERSION": "2", "SYNMON_RELEASE": "v2"},
        )
        pipeline.sync(
            {
                "checks": [
                    http_check("both", target.url("/ok"), locations=["eu-west-1", "us-east-1"])
                ]
            }
        )
        yield pipeline


@pytest.mark.processes
@pytest.mark.slow
def test_each_release_reads_the_others_messages(mixed: Pipeline) -> None:
    from tests.support.faults import assert_exactly_once

    definition = mixed.definition("both")
    sent: dict[uuid.UUID, tuple[str, int]] = {}
    messages: list[Outgoing] = []
    for location in ("eu-west-1", "us-east-1"):
        for version in (1, 2):
            request = RunRequest(
                uuid.uuid4(), definition, location, datetime.now(UTC), trigger="manual"
            )
            writer = mixed.settings.with_overrides(message_version=version)
            messages.append(run_request_message(request, writer))
            sent[request.run_id] = (location, version)
    BatchSender(mixed.settings).send(messages)
    assert_exactly_once(mixed, list(sent), timeout=90)
    rows = {row.run_id: row for row in mixed.rows(check_id="both")}
    for run_id, (location, request_version) in sent.items():
        row = rows[run_id]
        assert row.status == "passed"
        # The worker of each release wrote the result version its release writes, and
        # the v1 ingest read both.
        expected = ("v1", 1) if location == "eu-west-1" else ("v2", 2)
        assert (row.worker_version, row.message_version) == expected
        # Only a v2 request tells the trigger, and only a v2 result carries it on.
        assert row.trigger == ("manual" if expected[1] == 2 and request_version == 2 else None)


@pytest.mark.processes
def test_a_v2_task_body_is_unchanged_celery(mixed: Pipeline) -> None:
    """The version lives in the argument, not the envelope: any Celery reads both."""
    request = RunRequest(uuid.uuid4(), mixed.definition("both"), "eu-west-1", datetime.now(UTC))
    queue = queue_name(mixed.settings, "run", "eu-west-1", "http")
    for version in (1, 2):
        body = run_request_message(
            request, mixed.settings.with_overrides(message_version=version)
        ).body
        assert body.startswith(celery_task_body("x", "{}", queue)[:8])

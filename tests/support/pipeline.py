"""A running synmon over moto's SQS server and a throwaway Postgres database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from app.definitions.loader import load_definitions
from app.pipeline.sync import sync
from app.storage.db import sessions
from app.storage.models import CheckRow, CheckRunRow
from config.settings import Settings, load_settings, reset_settings
from tests.support.databases import postgres_database
from tests.support.processes import MotoServer, Synmon, moto_server


def http_check(check_id: str, url: str, **extra: Any) -> dict[str, Any]:
    """A check definition: HTTP GET ``url`` once a day from eu-west-1; ``extra`` adds to it
    (``request={...}`` to the request)."""
    return {
        "id": check_id,
        "type": "http",
        "frequency": "24h",
        "locations": ["eu-west-1"],
        "request": {"url": url, **extra.pop("request", {})},
        **extra,
    }


@dataclass
class Pipeline:
    settings: Settings
    env: dict[str, str]
    synmon: Synmon
    moto: MotoServer
    folder: Path

    def sync(self, document: dict[str, Any]) -> None:
        path = self.folder / "checks.yaml"
        path.write_text(yaml.safe_dump(document))
        with sessions(self.settings.database_url)() as session:
            sync(session, load_definitions(path, self.settings))

    def definition(self, check_id: str) -> dict[str, Any]:
        with sessions(self.settings.database_url)() as session:
            row = session.get(CheckRow, check_id)
            assert row is not None
            return row.definition

    def rows(self, **filters: Any) -> list[CheckRunRow]:
        with sessions(self.settings.database_url)() as session:
            query = select(CheckRunRow)
            for name, value in filters.items():
                query = query.where(getattr(CheckRunRow, name) == value)
            return list(session.scalars(query.order_by(CheckRunRow.scheduled_at, CheckRunRow.id)))


@contextmanager
def running_pipeline(
    folder: Path,
    env: dict[str, str],
    workers: list[tuple[str, str, int]] | None = None,
    ingest: bool = True,
    beat: bool = True,
    database_url: str | None = None,
    moto: MotoServer | None = None,
) -> Iterator[Pipeline]:
    """Queues created, then workers ``[(location, kind, concurrency)]``, ingest and beat."""
    with ExitStack() as stack:
        if moto is None:
            moto = stack.enter_context(moto_server())
        if database_url is None:
            database_url = stack.enter_context(postgres_database())
        full_env = {
            "SYNMON_ENV": "test",
            "SYNMON_DATABASE_URL": database_url,
            "SYNMON_SQS_ENDPOINT": moto.endpoint,
            "SYNMON_LOCATIONS": "eu-west-1",
            "SYNMON_DATA_DIR": str(folder),
            "SYNMON_LOG_FORMAT": "json",
            **env,
        }
        synmon = Synmon(full_env, folder)
        synmon.command("queues", "--create")
        for location, kind, concurrency in workers or [("eu-west-1", "http", 2)]:
            synmon.start(
                f"worker-{location}-{kind}",
                "worker",
                "-l",
                location,
                "-k",
                kind,
                "-c",
                str(concurrency),
            )
        if ingest:
            synmon.start("ingest", "ingest")
        if beat:
            synmon.start("beat", "beat")
        saved = {k: os.environ.get(k) for k in full_env if k.startswith("SYNMON_")}
        os.environ.update({k: v for k, v in full_env.items() if k.startswith("SYNMON_")})
        reset_settings()
        try:
            yield Pipeline(load_settings(full_env), full_env, synmon, moto, folder)
        finally:
            synmon.stop_all()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            reset_settings()

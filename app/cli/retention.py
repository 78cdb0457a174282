"""``synmon prune``: remove raw runs, rollups and artifacts older than their retention."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from app.cli.context import pass_settings
from app.cli.output import emit, json_option
from config.settings import Settings

if TYPE_CHECKING:
    from app.pipeline.retention import Pruned


@click.command()
@click.option("--dry-run", is_flag=True, help="Only say what the next pass removes.")
@json_option()
@pass_settings
def prune(settings: Settings, dry_run: bool, as_json: bool) -> None:
    """Remove what is older than its retention: raw runs (with their artifacts) after
    SYNMON_RUNS_RETENTION, hourly rollups after SYNMON_HOURLY_ROLLUPS_RETENTION, daily
    rollups after SYNMON_DAILY_ROLLUPS_RETENTION, by when runs were scheduled.

    The periodic task does the same every minute, two seconds of it at a time; running
    both at once is safe.
    """
    from app.execution.artifacts import store_for
    from app.pipeline.retention import plan_now, prune_now
    from app.storage.db import sessions

    Session = sessions(settings.database_url)
    found = (
        plan_now(Session, settings)
        if dry_run
        else prune_now(Session, settings, store_for(settings))
    )
    emit(
        as_json,
        lambda: {"dry_run": dry_run, **found.as_dict()},
        lambda: _lines(found, dry_run),
    )


def _lines(found: Pruned, dry_run: bool) -> Iterator[str]:
    yield "the next pass removes:" if dry_run else "removed:"
    yield f"  runs            {found.runs:>10}"
    yield f"  artifacts       {found.artifacts:>10}"
    yield f"  hourly rollups  {found.hourly_rollups:>10}"
    yield f"  daily rollups   {found.daily_rollups:>10}"
    yield f"  notifications   {found.notifications:>10}  (sent)"
    yield f"  retries sent    {found.outbox:>10}"
    if found.partitions:
        yield f"  of the runs, in {found.partitions} partition(s) dropped whole"


COMMANDS = [prune]

"""Commands about checks and their results: ``sync``, ``run``, ``runs``, ``stats``."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app.cli.context import pass_settings
from app.cli.output import emit, json_option
from config.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.ops.stats import Stats
    from app.storage.models import CheckRunRow

States = dict[str, tuple[str, dict[str, str]]]


@click.command()
@click.argument("path", type=click.Path(exists=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@pass_settings
def sync(settings: Settings, path: Path, dry_run: bool) -> None:
    """Apply the check and channel definitions under PATH (a file or a folder).

    The database ends up holding exactly what PATH defines: checks and channels missing
    from PATH are removed. Any invalid definition stops the whole sync.
    """
    from app.definitions.loader import load_definitions
    from app.pipeline.sync import sync as run_sync
    from app.storage.db import migrate as run_migrations
    from app.storage.db import sessions

    definitions = load_definitions(path, settings)
    run_migrations(settings.database_url)
    with sessions(settings.database_url)() as session:
        plan = run_sync(session, definitions, dry_run=dry_run)
    click.echo(plan.summary(applied=not dry_run))


def _window_s(since: str) -> float:
    """``--since`` in seconds; a usage error (exit 2) when it is not a duration."""
    from app.definitions.durations import parse_duration

    try:
        return parse_duration(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


@click.command()
@click.option("--since", default="10m", help="Window: 30s, 10m, 2h.")
@click.option("--by", "group_by", type=click.Choice(["location", "check"]), default="location")
@json_option()
@pass_settings
def stats(settings: Settings, since: str, group_by: str, as_json: bool) -> None:
    """Runs, outcomes, success ratio and run-time percentiles over a recent window."""
    from datetime import timedelta

    from app.ops.stats import run_stats
    from app.storage.db import sessions

    window = timedelta(seconds=_window_s(since))
    with sessions(settings.database_url)() as session:
        rows = run_stats(session, window, "check" if group_by == "check" else "location")
        # Per check, its state now and each location's: which region is failing.
        states = (
            _states(session, settings, [row.key for row in rows]) if group_by == "check" else {}
        )

    def documents() -> list[dict[str, Any]]:
        found = [row.as_dict() for row in rows]
        for document in found:
            if document["key"] in states:
                document["state"], document["location_states"] = states[document["key"]]
        return found

    emit(as_json, documents, lambda: _stats_lines(rows, group_by, states))


def _stats_lines(rows: Sequence[Stats], group_by: str, states: States) -> Iterator[str]:
    state_header = f" {'state':<9} locations" if group_by == "check" else ""
    yield (
        f"{group_by:<28} {'runs':>7} {'passed':>7} {'degraded':>8} {'failed':>7} {'success':>8} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}{state_header}"
    )
    for row in rows:
        state = ""
        if row.key in states:
            status, locations = states[row.key]
            state = f" {status:<9} " + ", ".join(f"{k} {v}" for k, v in locations.items())
        yield (
            f"{row.key:<28} {row.runs:>7} {row.passed:>7} {row.degraded:>8} {row.failed:>7} "
            f"{row.success_ratio:>8.1%} {row.p50_ms:>8.0f} {row.p95_ms:>8.0f} {row.p99_ms:>8.0f}"
            f"{state}"
        )


def _states(session: Session, settings: Settings, check_ids: list[str]) -> States:
    """Each check's state and its locations' (location -> status), for the checks given."""
    from sqlalchemy import select

    from app.pipeline.state import location_states
    from app.pipeline.state_store import stored_location_states
    from app.storage.models import CheckRow, CheckStateRow

    stored = stored_location_states(session, check_ids)
    rows = session.execute(
        select(CheckRow.id, CheckRow.locations, CheckStateRow.status)
        .outerjoin(CheckStateRow, CheckStateRow.check_id == CheckRow.id)
        .where(CheckRow.id.in_(check_ids))
    ).all()
    return {
        check_id: (
            status or "unknown",
            location_states(locations, stored.get(check_id, {}), settings.locations),
        )
        for check_id, locations, status in rows
    }


@click.command()
@click.argument("check_id")
@click.option("--location", "-l", default=None, help="Run in this location only.")
@click.option("--wait", is_flag=True, help="Wait for the result and print it.")
@click.option("--timeout", type=float, default=300.0, help="Seconds --wait waits at most.")
@pass_settings
def run(
    settings: Settings, check_id: str, location: str | None, wait: bool, timeout: float
) -> None:
    """Run a check now, through the queues."""
    from app.api import trigger, wait_for_runs

    run_ids = trigger(check_id, location, settings)
    for run_id in run_ids:
        click.echo(f"queued run {run_id}")
    if not wait:
        return
    rows = wait_for_runs(run_ids, timeout, settings)
    finals = [r for r in rows if r.final]
    for row in rows:
        click.echo(_run_line(row))
    if len({r.root_run_id for r in finals}) < len(run_ids):
        raise click.ClickException(f"no result within {timeout:g}s")
    if any(r.status == "failed" for r in finals):
        sys.exit(1)


def _run_line(row: CheckRunRow) -> str:
    attempt = f" attempt {row.attempt}" if row.attempt > 1 else ""
    error = f"  {row.error}" if row.error else ""
    return (
        f"{row.started_at:%Y-%m-%d %H:%M:%S} {row.check_id:<24} {row.location:<12} "
        f"{row.status:<9} {row.duration_ms:>8.0f} ms{attempt}{error}"
    )


@click.command()
@click.option("--check", "check_id", default=None, help="Only this check.")
@click.option("--since", default="10m", help="How far back: 30s, 10m, 2h.")
@click.option("--limit", type=int, default=200)
@json_option()
@pass_settings
def runs(settings: Settings, check_id: str | None, since: str, limit: int, as_json: bool) -> None:
    """Stored results, newest first."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from app.storage.db import sessions
    from app.storage.models import CheckRunRow

    window = _window_s(since)
    query = (
        select(CheckRunRow)
        .where(CheckRunRow.started_at >= datetime.now(UTC) - timedelta(seconds=window))
        .order_by(CheckRunRow.started_at.desc())
        .limit(limit)
    )
    if check_id:
        query = query.where(CheckRunRow.check_id == check_id)
    with sessions(settings.database_url)() as session:
        rows = session.scalars(query).all()
        states = _states(session, settings, [check_id]) if check_id and not as_json else {}

    def documents() -> list[dict[str, Any]]:
        from app.web.documents import run_document

        return [run_document(r, full=True) for r in rows]

    emit(as_json, documents, lambda: _runs_lines(rows, check_id, states))


def _runs_lines(rows: Sequence[CheckRunRow], check_id: str | None, states: States) -> Iterator[str]:
    if check_id in states:
        status, locations = states[check_id]
        where = ", ".join(f"{k} {v}" for k, v in locations.items())
        yield f"{check_id}: {status} ({where})"
    yield from (_run_line(row) for row in rows)


COMMANDS = [sync, stats, run, runs]

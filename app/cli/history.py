"""Commands about the past: ``report`` (uptime, latency and incidents from the rollups and
the incidents table), ``incidents`` (the list of alerting periods) and ``rollups
--rebuild`` (recount the rollups from the stored runs)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from app.cli.context import pass_settings
from app.cli.output import emit, json_option
from config.settings import Settings

if TYPE_CHECKING:
    from app.ops.incidents import Incident
    from app.ops.report import Report

_DAYS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*d\s*$")


def window(since: str, option: str = "--since") -> timedelta:
    """A duration as the other commands take it (30s, 10m, 2h), or in days (30d), since
    a report looks back that far; a usage error (exit 2) otherwise."""
    from app.definitions.durations import parse_duration

    days = _DAYS.match(since)
    if days:
        return timedelta(days=float(days.group(1)))
    try:
        return timedelta(seconds=parse_duration(since))
    except ValueError as exc:
        raise click.BadParameter(f"{exc}, or in days (30d)", param_hint=option) from None


@click.command()
@click.option("--since", default="30d", help="How far back: 2h, 7d, 30d (from the hour).")
@click.option("--by", "group_by", type=click.Choice(["check", "location"]), default="check")
@click.option("--check", "check_id", default=None, help="Only this check.")
@json_option()
@pass_settings
def report(
    settings: Settings, since: str, group_by: str, check_id: str | None, as_json: bool
) -> None:
    """Uptime, runs, failures, run-time percentiles and incidents per check or location.

    Read from the rollups, from the hour boundary at or before SINCE ago up to now (the
    current hour from the stored runs). Counts final attempts: a retried failure that
    then passed is one passed run. Incidents: those opened in the window (by location,
    each location an incident named as failing when it opened).
    """
    from app.ops.report import report as build
    from app.storage.db import sessions

    back = window(since)
    with sessions(settings.database_url)() as session:
        found = build(session, back, "location" if group_by == "location" else "check", check_id)
    emit(as_json, found.as_dict, lambda: _report_lines(found))


def _number(value: float | None, layout: str) -> str:
    return "-" if value is None else format(value, layout)


def _report_lines(found: Report) -> Iterator[str]:
    yield f"from {found.start:%Y-%m-%d %H:%M} to {found.end:%Y-%m-%d %H:%M} UTC"
    yield (
        f"{found.by:<28} {'uptime':>9} {'runs':>8} {'degraded':>8} {'failed':>7} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'incidents':>9}"
    )
    for line in found.lines:
        yield (
            f"{line.key:<28} {_number(line.uptime_pct, '8.3f')}% {line.runs:>8} "
            f"{line.degraded:>8} {line.failed:>7} {_number(line.p50_ms, '8.0f')} "
            f"{_number(line.p95_ms, '8.0f')} {_number(line.p99_ms, '8.0f')} "
            f"{line.incidents:>9}"
        )


@click.command()
@click.option("--open", "open_only", is_flag=True, help="Only the incidents still open.")
@click.option("--check", "check_id", default=None, help="Only this check.")
@click.option(
    "--since", default=None, help="Open at any time in the last 2h, 7d, 30d (default: all)."
)
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="At most this many, newest first.",
)
@json_option()
@pass_settings
def incidents(
    settings: Settings,
    open_only: bool,
    check_id: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Incidents, newest first: check, opened, closed, duration and the locations failing
    when it opened. An incident is one alerting period of a check (from its failure
    notice to its recovery); one still open is always listed, whatever SINCE.
    """
    from app.ops.incidents import incidents as listed
    from app.storage.db import sessions

    back = None if since is None else window(since)
    with sessions(settings.database_url)() as session:
        found = listed(session, back, check_id, open_only, limit=limit)
    emit(
        as_json,
        lambda: {"incidents": [incident.as_dict() for incident in found]},
        lambda: _incident_lines(found),
    )


def duration_text(seconds: float) -> str:
    """1d 4h, 2h 05m, 3m 20s, 42s: the two largest units."""
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _incident_lines(found: list[Incident]) -> Iterator[str]:
    if not found:
        yield "no incidents"
        return
    yield f"{'check':<28} {'opened (UTC)':<16} {'closed (UTC)':<16} {'duration':>9}  locations"
    for incident in found:
        closed = "open" if incident.closed_at is None else f"{incident.closed_at:%Y-%m-%d %H:%M}"
        yield (
            f"{incident.check_id:<28} {incident.opened_at:%Y-%m-%d %H:%M} {closed:<16} "
            f"{duration_text(incident.duration_s):>9}  {', '.join(incident.locations) or '-'}"
        )


@click.command()
@click.option("--rebuild", is_flag=True, required=True, help="Recount from the stored runs.")
@click.option("--since", default="2h", help="From the hour this long ago: 2h, 7d.")
@pass_settings
def rollups(settings: Settings, rebuild: bool, since: str) -> None:
    """Recount the hourly and daily rollups from the stored runs, from the hour SINCE ago.

    For the runs that a release without rollups stored: after a rolling update onto
    schema 0004, run it with --since covering the roll (or all history). Ingest waits
    while it runs, so a shorter SINCE holds it up less.
    """
    from datetime import UTC, datetime

    from app.pipeline.rollups import hour_start
    from app.pipeline.rollups import rebuild as recount
    from app.storage.db import sessions

    start = hour_start(datetime.now(UTC) - window(since))
    with sessions(settings.database_url).begin() as session:
        recount(session, start)
    click.echo(f"rollups recounted from {start:%Y-%m-%d %H:%M} UTC")


COMMANDS = [report, incidents, rollups]

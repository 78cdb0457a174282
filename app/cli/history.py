"""Commands about the past: ``report`` (uptime and latency from the rollups) and
``rollups --rebuild`` (recount them from the stored runs)."""

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
    """Uptime, runs, failures and run-time percentiles per check or location.

    Read from the rollups, from the hour boundary at or before SINCE ago up to now (the
    current hour from the stored runs). Counts final attempts: a retried failure that
    then passed is one passed run. Incidents are not reported yet.
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
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    )
    for line in found.lines:
        yield (
            f"{line.key:<28} {_number(line.uptime_pct, '8.3f')}% {line.runs:>8} "
            f"{line.degraded:>8} {line.failed:>7} {_number(line.p50_ms, '8.0f')} "
            f"{_number(line.p95_ms, '8.0f')} {_number(line.p99_ms, '8.0f')}"
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


COMMANDS = [report, rollups]

"""Operator commands: ``migrate``, ``health``, ``rollout``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import click

from app.cli.context import pass_settings
from app.cli.output import emit, json_option
from config.settings import Settings


@click.command()
@pass_settings
def migrate(settings: Settings) -> None:
    """Bring the database schema up to date."""
    from app.storage.db import current_revision
    from app.storage.db import migrate as run_migrations

    run_migrations(settings.database_url)
    click.echo(f"database at revision {current_revision(settings.database_url)}")


@click.command()
@click.option("--name", default=None, help="One process (e.g. http-eu-west-1@host); default: all.")
@click.option("--max-age", type=float, default=15.0, help="Seconds after which a report is stale.")
@json_option()
@pass_settings
def health(settings: Settings, name: str | None, max_age: float, as_json: bool) -> None:
    """Exit 0 when this machine's synmon processes are connected and consuming."""
    from app.ops import health as reports

    found = reports.read(settings, name)
    result = reports.summary(found, max_age)
    if not found and not as_json:
        click.echo(f"no synmon process has reported in {reports.folder(settings)}", err=True)
    else:
        emit(as_json, lambda: result, lambda: _health_lines(result))
    sys.exit(0 if result["ready"] else 1)


def _health_lines(result: dict[str, Any]) -> Iterator[str]:
    for process in result["processes"]:
        mark = "ready" if process["ready"] else "NOT READY"
        yield (
            f"{process['name']}: {mark} ({process['state']}, {process['age_s']}s ago, "
            f"release {process['release']})"
        )


@click.command()
@click.option("--location", "-l", required=True)
@click.option("--kind", "-k", type=click.Choice(["http", "browser"]), required=True)
@click.option("--count", type=click.IntRange(min=1), required=True, help="New workers to start.")
@click.option(
    "--replace",
    "old_pids",
    type=click.IntRange(min=1),
    multiple=True,
    help="PID of an old worker (repeat).",
)
@click.option(
    "--set", "assignments", multiple=True, help="KEY=VALUE for the new release's environment."
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1, max=512),
    default=None,
    help="Checks in flight per new worker; by default the new release's own setting.",
)
@pass_settings
def rollout(
    settings: Settings,
    location: str,
    kind: str,
    count: int,
    old_pids: tuple[int, ...],
    assignments: tuple[str, ...],
    concurrency: int | None,
) -> None:
    """Roll workers to a new release: start COUNT new ones, wait until `synmon health`
    says they are ready, then stop the old ones (--replace) one by one, draining each."""
    import os

    from app.ops.rollout import rollout as run_rollout

    environment = dict(os.environ)
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.startswith("SYNMON_"):
            raise click.BadParameter(
                f"{assignment!r}: expected SYNMON_NAME=value", param_hint="--set"
            )
        environment[key] = value
    report = run_rollout(
        settings,
        location,
        "browser" if kind == "browser" else "http",
        count,
        old_pids,
        environment,
        concurrency,
        progress=click.echo,
    )
    click.echo("rollout done: new workers " + " ".join(str(w.pid) for w in report.started))


COMMANDS = [migrate, health, rollout]

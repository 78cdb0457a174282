"""The ``synmon`` command."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from config.settings import ConfigError, Settings, get_settings


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="synmon")
def main() -> None:
    """synmon: self-hosted synthetic monitoring."""
    from app.logs import configure_logging

    configure_logging(settings_or_exit())


@main.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from app.storage.db import current_revision
    from app.storage.db import migrate as run_migrations

    settings = settings_or_exit()
    run_migrations(settings.database_url)
    click.echo(f"database at revision {current_revision(settings.database_url)}")


@main.command()
@click.argument("path", type=click.Path(exists=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
def sync(path: Path, dry_run: bool) -> None:
    """Apply the check and channel definitions under PATH (a file or a folder).

    The database ends up holding exactly what PATH defines: checks and channels missing
    from PATH are removed. Any invalid definition stops the whole sync.
    """
    from app.checks.loader import DefinitionError, load_definitions
    from app.checks.sync import sync as run_sync
    from app.storage.db import migrate as run_migrations
    from app.storage.db import sessions

    settings = settings_or_exit()
    try:
        definitions = load_definitions(path, settings)
    except DefinitionError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    run_migrations(settings.database_url)
    with sessions(settings.database_url)() as session:
        plan = run_sync(session, definitions, dry_run=dry_run)
    click.echo(plan.summary(applied=not dry_run))


if __name__ == "__main__":
    main()

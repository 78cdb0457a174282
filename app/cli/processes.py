"""Commands that run one of synmon's long-lived processes, or all of them (``up``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app.cli.context import pass_settings
from app.cli.serve import until_signal
from config.settings import Settings


def _celery_argv(
    settings: Settings, queues: list[str], name: str, concurrency: int, pool: str = "prefork"
) -> list[str]:
    argv = [
        "worker",
        "-Q",
        ",".join(queues),
        "-n",
        name,
        "-c",
        str(concurrency),
        "-P",
        pool,
        "-O",
        "fair",
        "--without-gossip",
        "--without-mingle",
        "-l",
        settings.log_level,
    ]
    if settings.events_url is None:
        argv.append("--without-heartbeat")  # heartbeats are events; SQS carries none
    return argv


@click.command()
@click.option("--location", "-l", required=True, help="The location (region) this worker serves.")
@click.option("--kind", "-k", type=click.Choice(["http", "browser"]), required=True)
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=None,
    help="Checks in flight: threads or processes (default from settings).",
)
@click.option("--name", "-n", default=None, help="Node name (default: KIND-LOCATION@HOST).")
@pass_settings
def worker(
    settings: Settings, location: str, kind: str, concurrency: int | None, name: str | None
) -> None:
    """A Celery worker for one location and kind of check."""
    from app.celery import app as celery_app
    from app.pipeline.queues import queue_name

    if location not in settings.locations:
        raise click.ClickException(
            f"unknown location {location!r}; SYNMON_LOCATIONS is {','.join(settings.locations)}"
        )
    if kind == "http":
        default, pool = settings.http_concurrency, settings.http_pool
    else:
        # One Chromium per process, a run per thread: each thread hands its run to the
        # loop that drives Chromium and waits (app/execution/browser/pool.py).
        default, pool = settings.browser_concurrency, "threads"
    queue = queue_name(settings, "run", location, kind)  # type: ignore[arg-type]
    node = name or f"{kind}-{location}@%h"
    celery_app.worker_main(_celery_argv(settings, [queue], node, concurrency or default, pool))


@click.command()
@pass_settings
def beat(settings: Settings) -> None:
    """The scheduler: celery beat and the dispatcher it triggers, in one process."""
    from app.celery import app as celery_app
    from app.ops.metrics import serve_process_metrics
    from app.pipeline.queues import queue_name
    from app.storage.db import migrate as run_migrations

    run_migrations(settings.database_url)
    serve_process_metrics(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    argv = _celery_argv(settings, [queue_name(settings, "dispatch")], "dispatch@%h", 1, pool="solo")
    argv += ["--beat", "-s", str(settings.data_dir / "beat-schedule")]
    celery_app.worker_main(argv)


@click.command()
@pass_settings
def ingest(settings: Settings) -> None:
    """The result consumer: stores results in the database, schedules retries and alerts."""
    import socket
    import threading

    from app.alerts.sender import NotificationSender
    from app.ops.health import Reporter
    from app.ops.metrics import serve_process_metrics
    from app.pipeline.ingest import Ingestor
    from app.storage.db import migrate as run_migrations
    from app.storage.db import sessions

    run_migrations(settings.database_url)
    serve_process_metrics(settings)
    stop = until_signal()
    session_factory = sessions(settings.database_url)
    sender = NotificationSender(settings, session_factory, stop)
    notifier = threading.Thread(target=sender.run_forever, name="notifier", daemon=True)
    notifier.start()
    ingestor = Ingestor(settings, session_factory, stop)
    reporter = Reporter(
        settings, f"ingest@{socket.gethostname()}", [ingestor.queue], ingestor.health
    )
    reporter.start()
    ingestor.run_forever()
    reporter.stop()
    notifier.join(timeout=10)


@click.command()
@pass_settings
def web(settings: Settings) -> None:
    """The web product: dashboard, REST API, /metrics (SYNMON_WEB_ADDRESS:SYNMON_WEB_PORT)."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.storage.db import sessions
    from app.web.accounts import user_count
    from app.web.auth import NO_USER
    from app.web.server import run

    try:
        with sessions(settings.database_url)() as session:
            if not user_count(session):
                click.echo(f"synmon web: {NO_USER}", err=True)
    except SQLAlchemyError as exc:
        # Said, not fatal: the database may come up (or be migrated) after the web.
        click.echo(
            f"synmon web: the database does not answer yet ({exc.__class__.__name__})", err=True
        )
    click.echo(
        f"web product on http://{settings.web_address}:{settings.web_port}/ "
        f"(reached at {settings.web_public_url}), {settings.web_workers} worker(s)"
    )
    run(settings)


@click.command()
@pass_settings
def flower(settings: Settings) -> None:
    """Flower on the side channel (SYNMON_EVENTS_URL), with basic auth unless disabled."""
    import os

    if settings.events_url is None:
        raise click.ClickException(
            "Flower needs SYNMON_EVENTS_URL (a Redis URL): SQS carries no Celery events"
        )
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "app.celery.flower",
        "flower",
        f"--address={settings.flower_address}",
        f"--port={settings.flower_port}",
    ]
    # The login travels in Flower's own environment variable, never on the command line:
    # any local user can read another process's /proc/PID/cmdline, not its environment.
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    if settings.flower_basic_auth:
        env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth
    elif not settings.flower_auth_disabled:
        raise click.ClickException(
            "Flower shows every task's arguments: set SYNMON_FLOWER_BASIC_AUTH=user:password "
            "(or SYNMON_FLOWER_AUTH_DISABLED=true on a trusted network)"
        )
    os.execve(sys.executable, argv, env)  # noqa: S606 - replaces this process with Flower


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def up(paths: tuple[Path, ...]) -> None:
    """Run the whole system on this machine: storage, SQS endpoint, workers, scheduler,
    ingest, status page (and Flower with SYNMON_EVENTS_URL). Syncs PATHS first."""
    from app.local.up import up as run_up

    sys.exit(run_up(list(paths)))


COMMANDS = [worker, beat, ingest, web, flower, up]

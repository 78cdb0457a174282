"""The ``synmon`` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from config.settings import ConfigError, Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.storage.models import CheckRunRow


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="synmon")
def main() -> None:
    """synmon: self-hosted synthetic monitoring."""
    from app.ops.logs import configure_logging
    from app.ops.metrics import prepare_process

    settings = settings_or_exit()
    prepare_process(settings)
    configure_logging(settings)


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
    from app.definitions.loader import DefinitionError, load_definitions
    from app.pipeline.sync import sync as run_sync
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


@main.command()
@click.option("--location", "-l", required=True, help="The location (region) this worker serves.")
@click.option("--kind", "-k", type=click.Choice(["http", "browser"]), required=True)
@click.option(
    "--concurrency", "-c", type=int, default=None, help="Processes (default from settings)."
)
@click.option("--name", "-n", default=None, help="Node name (default: KIND-LOCATION@HOST).")
def worker(location: str, kind: str, concurrency: int | None, name: str | None) -> None:
    """A Celery worker for one location and kind of check."""
    from app.celery import app as celery_app
    from app.pipeline.queues import queue_name

    settings = settings_or_exit()
    if location not in settings.locations:
        raise click.ClickException(
            f"unknown location {location!r}; SYNMON_LOCATIONS is {','.join(settings.locations)}"
        )
    default = settings.http_concurrency if kind == "http" else settings.browser_concurrency
    queue = queue_name(settings, "run", location, kind)  # type: ignore[arg-type]
    celery_app.worker_main(
        _celery_argv(settings, [queue], name or f"{kind}-{location}@%h", concurrency or default)
    )


@main.command()
def beat() -> None:
    """The scheduler: celery beat and the dispatcher it triggers, in one process."""
    from app.celery import app as celery_app
    from app.ops.metrics import serve_process_metrics
    from app.pipeline.queues import queue_name
    from app.storage.db import migrate as run_migrations

    settings = settings_or_exit()
    run_migrations(settings.database_url)
    serve_process_metrics(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    argv = _celery_argv(settings, [queue_name(settings, "dispatch")], "dispatch@%h", 1, pool="solo")
    argv += ["--beat", "-s", str(settings.data_dir / "beat-schedule")]
    celery_app.worker_main(argv)


@main.command()
def ingest() -> None:
    """The result consumer: stores results in the database, schedules retries and alerts."""
    import signal
    import socket
    import threading

    from app.alerts.notify import NotificationSender
    from app.ops.health import Reporter
    from app.ops.metrics import serve_process_metrics
    from app.pipeline.ingest import Ingestor
    from app.storage.db import migrate as run_migrations
    from app.storage.db import sessions

    settings = settings_or_exit()
    run_migrations(settings.database_url)
    serve_process_metrics(settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
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


@main.command()
@click.option("--create", is_flag=True, help="Create missing queues and DLQs (local endpoints).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def queues(create: bool, as_json: bool) -> None:
    """Depth, in-flight and delayed messages of every queue and dead-letter queue."""
    import json

    from app.ops.queue_stats import all_stats
    from app.pipeline.sqs import create_queues

    settings = settings_or_exit()
    if create:
        specs = create_queues(settings)
        if not as_json:
            click.echo(f"{len(specs)} queue(s) and their dead-letter queues are in place")
    stats = all_stats(settings)
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in stats], indent=2))
        return
    click.echo(f"{'queue':<48} {'visible':>8} {'in flight':>10} {'delayed':>8} {'oldest':>8}")
    for item in stats:
        age = "-" if item.oldest_age_s is None else f"{item.oldest_age_s:.0f}s"
        click.echo(
            f"{item.name:<48} {item.visible:>8} {item.in_flight:>10} {item.delayed:>8} {age:>8}"
        )


@main.command()
@click.option("--since", default="10m", help="Window: 30s, 10m, 2h.")
@click.option("--by", "group_by", type=click.Choice(["location", "check"]), default="location")
@click.option("--json", "as_json", is_flag=True)
def stats(since: str, group_by: str, as_json: bool) -> None:
    """Runs, outcomes, success ratio and run-time percentiles over a recent window."""
    import json
    from datetime import timedelta

    from app.definitions.durations import parse_duration
    from app.ops.stats import run_stats
    from app.storage.db import sessions

    settings = settings_or_exit()
    try:
        window = timedelta(seconds=parse_duration(since))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    with sessions(settings.database_url)() as session:
        rows = run_stats(session, window, "check" if group_by == "check" else "location")
        # Per check, its state now and each location's: which region is failing.
        states = _states(session, [row.key for row in rows]) if group_by == "check" else {}
    if as_json:
        documents = [row.as_dict() for row in rows]
        for document in documents:
            if document["key"] in states:
                document["state"], document["location_states"] = states[document["key"]]
        click.echo(json.dumps(documents, indent=2))
        return
    state_header = f" {'state':<9} locations" if group_by == "check" else ""
    click.echo(
        f"{group_by:<28} {'runs':>7} {'passed':>7} {'degraded':>8} {'failed':>7} {'success':>8} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}{state_header}"
    )
    for row in rows:
        state = ""
        if row.key in states:
            status, locations = states[row.key]
            state = f" {status:<9} " + ", ".join(f"{k} {v}" for k, v in locations.items())
        click.echo(
            f"{row.key:<28} {row.runs:>7} {row.passed:>7} {row.degraded:>8} {row.failed:>7} "
            f"{row.success_ratio:>8.1%} {row.p50_ms:>8.0f} {row.p95_ms:>8.0f} {row.p99_ms:>8.0f}"
            f"{state}"
        )


def _states(session: Session, check_ids: list[str]) -> dict[str, tuple[str, dict[str, str]]]:
    """Each check's state and its locations' (location -> status), for the checks given."""
    from sqlalchemy import select

    from app.pipeline.state import location_states
    from app.pipeline.state_store import stored_location_states
    from app.storage.models import CheckRow, CheckStateRow

    settings = settings_or_exit()
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


@main.group()
def dlq() -> None:
    """Dead-letter queues: show, redrive (replay) or purge their messages.

    QUEUE is a dead-letter queue or the queue it serves, e.g. synmon-prod-results.
    """


@dlq.command("show")
@click.argument("queue")
@click.option("--limit", type=int, default=50)
@click.option("--json", "as_json", is_flag=True)
def dlq_show(queue: str, limit: int, as_json: bool) -> None:
    """List messages in a dead-letter queue, with what they are."""
    import json

    from app.ops import dlq as dead_letters

    settings = settings_or_exit()
    try:
        letters = dead_letters.show(settings, queue, limit)
    except dead_letters.UnknownQueue as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps([letter.as_dict() for letter in letters], indent=2))
        return
    for letter in letters:
        click.echo(
            f"{letter.message_id}  sent {letter.sent_at}  delivered {letter.receive_count}x  "
            f"{letter.kind}: {letter.summary}"
        )
    click.echo(f"{len(letters)} message(s) shown")


@dlq.command("redrive")
@click.argument("queue")
@click.option("--limit", type=int, default=None, help="At most this many messages.")
def dlq_redrive(queue: str, limit: int | None) -> None:
    """Send messages back to the queue they came from, to be processed again."""
    from app.ops import dlq as dead_letters

    settings = settings_or_exit()
    try:
        moved = dead_letters.redrive(settings, queue, limit)
    except dead_letters.UnknownQueue as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{moved} message(s) sent back for another try")


@dlq.command("purge")
@click.argument("queue")
@click.option("--yes", is_flag=True, help="Confirm: the messages are gone for good.")
def dlq_purge(queue: str, yes: bool) -> None:
    """Drop every message of a dead-letter queue."""
    from app.ops import dlq as dead_letters

    if not yes:
        raise click.ClickException("purging cannot be undone: add --yes")
    settings = settings_or_exit()
    try:
        count = dead_letters.purge(settings, queue)
    except dead_letters.UnknownQueue as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"purged about {count} message(s)")


@main.command()
@click.argument("check_id")
@click.option("--location", "-l", default=None, help="Run in this location only.")
@click.option("--wait", is_flag=True, help="Wait for the result and print it.")
@click.option("--timeout", type=float, default=300.0, help="Seconds --wait waits at most.")
def run(check_id: str, location: str | None, wait: bool, timeout: float) -> None:
    """Run a check now, through the queues."""
    from app.api import UnknownCheck, trigger, wait_for_runs

    settings = settings_or_exit()
    try:
        run_ids = trigger(check_id, location, settings)
    except UnknownCheck as exc:
        raise click.ClickException(str(exc)) from None
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


@main.command()
@click.option("--check", "check_id", default=None, help="Only this check.")
@click.option("--since", default="10m", help="How far back: 30s, 10m, 2h.")
@click.option("--limit", type=int, default=200)
@click.option("--json", "as_json", is_flag=True)
def runs(check_id: str | None, since: str, limit: int, as_json: bool) -> None:
    """Stored results, newest first."""
    import json
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from app.definitions.durations import parse_duration
    from app.storage.db import sessions
    from app.storage.models import CheckRunRow

    settings = settings_or_exit()
    try:
        window = parse_duration(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
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
        states = _states(session, [check_id]) if check_id and not as_json else {}
    if check_id in states:
        status, locations = states[check_id]
        where = ", ".join(f"{k} {v}" for k, v in locations.items())
        click.echo(f"{check_id}: {status} ({where})")
    if as_json:
        from app.web.wsgi import run_document

        click.echo(json.dumps([run_document(r, full=True) for r in rows], indent=2, default=str))
    else:
        for row in rows:
            click.echo(_run_line(row))


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def up(paths: tuple[Path, ...]) -> None:
    """Run the whole system on this machine: storage, SQS endpoint, workers, scheduler,
    ingest, status page (and Flower with SYNMON_EVENTS_URL). Syncs PATHS first."""
    from app.local.up import UpError
    from app.local.up import up as run_up

    settings_or_exit()
    try:
        sys.exit(run_up(list(paths)))
    except UpError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--name", default=None, help="One process (e.g. http-eu-west-1@host); default: all.")
@click.option("--max-age", type=float, default=15.0, help="Seconds after which a report is stale.")
@click.option("--json", "as_json", is_flag=True)
def health(name: str | None, max_age: float, as_json: bool) -> None:
    """Exit 0 when this machine's synmon processes are connected and consuming."""
    import json

    from app.ops import health as reports

    settings = settings_or_exit()
    found = reports.read(settings, name)
    result = reports.summary(found, max_age)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif not found:
        click.echo(f"no synmon process has reported in {reports.folder(settings)}", err=True)
    else:
        for process in result["processes"]:
            mark = "ready" if process["ready"] else "NOT READY"
            click.echo(
                f"{process['name']}: {mark} ({process['state']}, {process['age_s']}s ago, "
                f"release {process['release']})"
            )
    sys.exit(0 if result["ready"] else 1)


@main.command()
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
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=1)
def rollout(
    location: str,
    kind: str,
    count: int,
    old_pids: tuple[int, ...],
    assignments: tuple[str, ...],
    concurrency: int,
) -> None:
    """Roll workers to a new release: start COUNT new ones, wait until `synmon health`
    says they are ready, then stop the old ones (--replace) one by one, draining each."""
    import os

    from app.ops.rollout import RolloutError
    from app.ops.rollout import rollout as run_rollout

    settings = settings_or_exit()
    environment = dict(os.environ)
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.startswith("SYNMON_"):
            raise click.BadParameter(
                f"{assignment!r}: expected SYNMON_NAME=value", param_hint="--set"
            )
        environment[key] = value
    try:
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
    except RolloutError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("rollout done: new workers " + " ".join(str(w.pid) for w in report.started))


@main.command()
def flower() -> None:
    """Flower on the side channel (SYNMON_EVENTS_URL), with basic auth unless disabled."""
    import os

    settings = settings_or_exit()
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


@main.command()
def web() -> None:
    """The status page, JSON API and /metrics (SYNMON_WEB_ADDRESS:SYNMON_WEB_PORT)."""
    import signal
    import threading

    from app.ops.metrics import Metrics
    from app.web.wsgi import StatusApp, serve

    settings = settings_or_exit()
    server, _ = serve(
        StatusApp(settings, Metrics(settings).render), settings.web_address, settings.web_port
    )
    click.echo(f"status page on http://{settings.web_address}:{settings.web_port}/")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.shutdown()


if __name__ == "__main__":
    main()

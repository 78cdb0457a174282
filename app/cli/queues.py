"""Commands about the queues: ``queues`` and ``dlq show|redrive|purge``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import click

from app.cli.context import pass_settings
from app.cli.output import emit, json_option
from config.settings import Settings

if TYPE_CHECKING:
    from app.ops.dlq import DeadLetter
    from app.ops.queue_stats import QueueStats


@click.command()
@click.option("--create", is_flag=True, help="Create missing queues and DLQs (local endpoints).")
@json_option("Machine-readable output.")
@pass_settings
def queues(settings: Settings, create: bool, as_json: bool) -> None:
    """Depth, in-flight and delayed messages of every queue and dead-letter queue."""
    from app.ops.queue_stats import all_stats
    from app.pipeline.sqs import create_queues

    if create:
        specs = create_queues(settings)
        if not as_json:
            click.echo(f"{len(specs)} queue(s) and their dead-letter queues are in place")
    stats = all_stats(settings)
    emit(as_json, lambda: [s.as_dict() for s in stats], lambda: _queue_lines(stats))


def _queue_lines(stats: Sequence[QueueStats]) -> Iterator[str]:
    yield f"{'queue':<48} {'visible':>8} {'in flight':>10} {'delayed':>8} {'oldest':>8}"
    for item in stats:
        age = "-" if item.oldest_age_s is None else f"{item.oldest_age_s:.0f}s"
        yield f"{item.name:<48} {item.visible:>8} {item.in_flight:>10} {item.delayed:>8} {age:>8}"


@click.group()
def dlq() -> None:
    """Dead-letter queues: show, redrive (replay) or purge their messages.

    QUEUE is a dead-letter queue or the queue it serves, e.g. synmon-prod-results.
    """


@dlq.command("show")
@click.argument("queue")
@click.option("--limit", type=int, default=50)
@json_option()
@pass_settings
def dlq_show(settings: Settings, queue: str, limit: int, as_json: bool) -> None:
    """List messages in a dead-letter queue, with what they are."""
    from app.ops import dlq as dead_letters

    letters = dead_letters.show(settings, queue, limit)
    emit(as_json, lambda: [letter.as_dict() for letter in letters], lambda: _letter_lines(letters))


def _letter_lines(letters: Sequence[DeadLetter]) -> Iterator[str]:
    for letter in letters:
        yield (
            f"{letter.message_id}  sent {letter.sent_at}  delivered {letter.receive_count}x  "
            f"{letter.kind}: {letter.summary}"
        )
    yield f"{len(letters)} message(s) shown"


@dlq.command("redrive")
@click.argument("queue")
@click.option("--limit", type=int, default=None, help="At most this many messages.")
@pass_settings
def dlq_redrive(settings: Settings, queue: str, limit: int | None) -> None:
    """Send messages back to the queue they came from, to be processed again."""
    from app.ops import dlq as dead_letters

    moved = dead_letters.redrive(settings, queue, limit)
    click.echo(f"{moved} message(s) sent back for another try")


@dlq.command("purge")
@click.argument("queue")
@click.option("--yes", is_flag=True, help="Confirm: the messages are gone for good.")
@pass_settings
def dlq_purge(settings: Settings, queue: str, yes: bool) -> None:
    """Drop every message of a dead-letter queue."""
    from app.ops import dlq as dead_letters

    if not yes:
        raise click.ClickException("purging cannot be undone: add --yes")
    count = dead_letters.purge(settings, queue)
    click.echo(f"purged about {count} message(s)")


COMMANDS: list[click.Command] = [queues, dlq]

"""The ``synmon`` command.

One module per concern: ``context`` (the settings, read once), ``errors`` (expected
errors to messages and exit codes), ``output`` (``--json`` or human output), ``serve``
(running until a signal), and the commands by role: ``checks``, ``queues``,
``processes``, ``ops``, ``history``, ``retention``, ``accounts`` (users and API tokens).
"""

from __future__ import annotations

import click

from app.cli import accounts, checks, history, ops, processes, queues, retention
from app.cli.context import load_settings
from app.cli.errors import SynmonGroup


@click.group(cls=SynmonGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="synmon")
@click.pass_context
def main(ctx: click.Context) -> None:
    """synmon: self-hosted synthetic monitoring."""
    from app.ops.logs import configure_logging
    from app.ops.metrics import prepare_process

    settings = load_settings(ctx)
    prepare_process(settings)
    configure_logging(settings)


for _module in (checks, queues, processes, ops, history, retention, accounts):
    for _command in _module.COMMANDS:
        main.add_command(_command)


if __name__ == "__main__":
    main()

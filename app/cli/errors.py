"""The one place where an error synmon expects becomes a message and an exit code.

Commands let ``SynmonError`` (and ``ConfigError``) propagate; ``SynmonGroup.invoke``
prints the error's message on stderr, as click prints its own errors and without a
traceback, and exits with the error's ``exit_code``. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from typing import Any

import click

from config.errors import SynmonError
from config.settings import ConfigError


def shown(exc: Exception) -> tuple[str, int] | None:
    """The message and exit code the CLI shows for ``exc``; None if it is not expected."""
    if isinstance(exc, click.ClickException):
        return None  # click shows its own
    code = exc.exit_code if isinstance(exc, SynmonError) else 1
    if isinstance(exc, ConfigError):
        return f"Error: configuration: {exc}", code
    if not (isinstance(exc, SynmonError)):
        return None
    from app.definitions.loader import DefinitionError

    if isinstance(exc, DefinitionError):
        # A list of problems, one a line, printed as ``synmon sync`` always printed it:
        # an "Error:" before the first line only would read as if it were the only one.
        return str(exc), code
    return f"Error: {exc}", code


class SynmonGroup(click.Group):
    """The ``synmon`` group: an expected error raised by it or by any command below it
    ends the process with its message and exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            found = shown(exc)
            if found is None:
                raise
            message, code = found
            click.echo(message, err=True)
            raise click.exceptions.Exit(code) from None

"""``--json`` or human output: every command that has ``--json`` prints through here."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def json_option(help_text: str | None = None) -> Callable[[F], F]:
    """The ``--json`` flag, passed to the command as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def emit(as_json: bool, document: Callable[[], Any], lines: Callable[[], Iterable[str]]) -> None:
    """With ``--json``, ``document()`` as indented JSON; otherwise each of ``lines()``.

    Both are callables so that only the output asked for is built (the JSON form of a
    run needs the web module). ``default=str`` prints timestamps and UUIDs as text.
    """
    if as_json:
        click.echo(json.dumps(document(), indent=2, default=str))
        return
    for line in lines():
        click.echo(line)

"""The settings every command works with, read once per invocation.

The group reads them (``load_settings``) before any command runs, so that a bad
setting stops every command the same way; commands take them from the click context
(``@pass_settings``) instead of reading the environment again.
"""

from __future__ import annotations

import click

from config.settings import Settings, get_settings

pass_settings = click.make_pass_decorator(Settings)


def load_settings(ctx: click.Context) -> Settings:
    """The process's settings, kept on ``ctx.obj`` for the commands below the group."""
    settings = get_settings()
    ctx.obj = settings
    return settings

"""``synmon users`` and ``synmon tokens``: who may sign in to the web product and the API."""

from __future__ import annotations

import sys

import click

from app.cli.context import pass_settings
from app.cli.output import emit
from config.settings import Settings

ROLE = click.Choice(["viewer", "editor", "admin"])


def _password(from_stdin: bool) -> str:
    if from_stdin:
        # One line: what a password manager or `echo` pipes in, without its newline.
        return sys.stdin.readline().rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group()
def users() -> None:
    """The web product's users (roles: viewer reads, editor also runs and pauses checks,
    admin also manages users and tokens)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=ROLE, required=True)
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@pass_settings
def users_add(settings: Settings, name: str, role: str, password_stdin: bool) -> None:
    """Add user NAME; the password is asked for (twice) or read from standard input."""
    from app.storage.db import sessions
    from app.web.accounts import AccountError, add_user, check_name

    try:
        check_name(name)
        password = _password(password_stdin)
        with sessions(settings.database_url).begin() as session:
            add_user(session, name, password, role)
    except AccountError as exc:
        raise _fail(exc) from None
    click.echo(f"added user {name} ({role})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_settings
def users_list(settings: Settings, as_json: bool) -> None:
    """Every user with their role."""
    from app.storage.db import sessions
    from app.web.accounts import list_users

    with sessions(settings.database_url)() as session:
        found = [
            {
                "name": u.name,
                "role": u.role,
                "created_at": u.created_at,
                "locked_until": u.locked_until,
            }
            for u in list_users(session)
        ]

    def lines() -> list[str]:
        if not found:
            return ["no users: `synmon users add NAME --role admin` adds one"]
        return [
            f"{u['name']:<24} {u['role']:<7}"
            + (f" locked until {u['locked_until']:%Y-%m-%d %H:%M}" if u["locked_until"] else "")
            for u in found
        ]

    emit(as_json, lambda: found, lines)


@users.command("remove")
@click.argument("name")
@pass_settings
def users_remove(settings: Settings, name: str) -> None:
    """Remove user NAME (their sign-ins end with it)."""
    from app.storage.db import sessions
    from app.web.accounts import AccountError, remove_user

    try:
        with sessions(settings.database_url).begin() as session:
            remove_user(session, name)
    except AccountError as exc:
        raise _fail(exc) from None
    click.echo(f"removed user {name}")


@users.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@pass_settings
def users_set_password(settings: Settings, name: str, password_stdin: bool) -> None:
    """Give NAME a new password (ends their sign-ins, lifts a lockout)."""
    from app.storage.db import sessions
    from app.web.accounts import AccountError, set_password

    try:
        password = _password(password_stdin)
        with sessions(settings.database_url).begin() as session:
            set_password(session, name, password)
    except AccountError as exc:
        raise _fail(exc) from None
    click.echo(f"changed the password of {name}")


@click.group()
def tokens() -> None:
    """API tokens, for `Authorization: Bearer` (shown once, stored hashed)."""


@tokens.command("create")
@click.option("--name", required=True)
@click.option("--role", type=ROLE, required=True)
@pass_settings
def tokens_create(settings: Settings, name: str, role: str) -> None:
    """Create a token and print it: it is not shown again."""
    from app.storage.db import sessions
    from app.web.accounts import AccountError, create_token

    try:
        with sessions(settings.database_url).begin() as session:
            value = create_token(session, name, role)
    except AccountError as exc:
        raise _fail(exc) from None
    click.echo(f"token {name} ({role}), shown this once:", err=True)
    click.echo(value)


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_settings
def tokens_list(settings: Settings, as_json: bool) -> None:
    """Every token's name, role and last use (never the token)."""
    from app.storage.db import sessions
    from app.web.accounts import list_tokens

    with sessions(settings.database_url)() as session:
        found = [
            {
                "name": t.name,
                "role": t.role,
                "created_at": t.created_at,
                "last_used_at": t.last_used_at,
            }
            for t in list_tokens(session)
        ]

    def lines() -> list[str]:
        if not found:
            return ["no tokens: `synmon tokens create --name NAME --role viewer` makes one"]
        return [
            f"{t['name']:<24} {t['role']:<7} last used "
            + (f"{t['last_used_at']:%Y-%m-%d %H:%M}" if t["last_used_at"] else "never")
            for t in found
        ]

    emit(as_json, lambda: found, lines)


@tokens.command("revoke")
@click.argument("name")
@pass_settings
def tokens_revoke(settings: Settings, name: str) -> None:
    """Revoke token NAME: it is refused from the next request on."""
    from app.storage.db import sessions
    from app.web.accounts import AccountError, revoke_token

    try:
        with sessions(settings.database_url).begin() as session:
            revoke_token(session, name)
    except AccountError as exc:
        raise _fail(exc) from None
    click.echo(f"revoked token {name}")


COMMANDS = [users, tokens]

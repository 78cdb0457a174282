"""Users, tokens, sign-in sessions and pauses as plain functions on a real database, and
``synmon users`` / ``synmon tokens`` as an operator types them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from app.cli import main
from app.storage.accounts import ApiTokenRow, UserRow, WebSessionRow
from app.storage.db import sessions
from app.web import accounts
from app.web.accounts import AccountError

LOCK = timedelta(minutes=15)


def test_a_password_is_stored_as_an_argon2_hash(database_url: str) -> None:
    with sessions(database_url).begin() as session:
        accounts.add_user(session, "ann", "s3cret-enough", "editor")
    with sessions(database_url)() as session:
        user = session.scalar(select(UserRow))
        assert user is not None and user.role == "editor"
        assert user.password_hash.startswith("$argon2id$")
        assert "s3cret-enough" not in user.password_hash


@pytest.mark.parametrize(
    ("name", "password", "role", "message"),
    [
        ("ann", "short", "viewer", "8 to 1024 characters"),
        ("ann", "x" * 1025, "viewer", "8 to 1024 characters"),
        ("ann", "long enough", "root", "role must be one of viewer, editor, admin"),
        ("-ann", "long enough", "viewer", "a name is 1 to 64"),
        ("a" * 65, "long enough", "viewer", "a name is 1 to 64"),
        ("ann smith", "long enough", "viewer", "a name is 1 to 64"),
    ],
)
def test_a_bad_user_is_refused_with_the_reason(
    database_url: str, name: str, password: str, role: str, message: str
) -> None:
    with sessions(database_url).begin() as session, pytest.raises(AccountError, match=message):
        accounts.add_user(session, name, password, role)


def test_a_name_is_taken_once(database_url: str) -> None:
    with sessions(database_url).begin() as session:
        accounts.add_user(session, "ann", "long enough", "viewer")
    with sessions(database_url).begin() as session, pytest.raises(AccountError, match="exists"):
        accounts.add_user(session, "ann", "other enough", "admin")


def test_failed_sign_ins_lock_the_user_out_then_the_lock_ends(database_url: str) -> None:
    with sessions(database_url).begin() as session:
        accounts.add_user(session, "ann", "right password", "viewer")

    def attempt(password: str) -> accounts.SignIn:
        with sessions(database_url).begin() as session:
            return accounts.authenticate(session, "ann", password, 3, LOCK)

    # A success resets the count: two failures, a success, two more do not lock.
    for password in ("wrong 1", "wrong 2", "right password", "wrong 3", "wrong 4"):
        attempt(password)
    assert attempt("right password").user is not None
    for n in range(3):
        assert attempt(f"wrong {n}").refused == accounts.REFUSED
    # Locked: even the right password is refused, with the answer a wrong one gets (a
    # different one would tell a stranger the name exists).
    locked = attempt("right password")
    assert locked.user is None and locked.refused == accounts.REFUSED
    with sessions(database_url).begin() as session:
        user = session.scalar(select(UserRow))
        assert user is not None and user.locked_until is not None
        user.locked_until = datetime.now(UTC) - timedelta(seconds=1)  # the lockout is over
    assert attempt("right password").user is not None
    # Unknown names read as a wrong password (no list of names by trial).
    with sessions(database_url).begin() as session:
        unknown = accounts.authenticate(session, "bob", "anything", 3, LOCK)
    assert unknown.user is None and unknown.refused == accounts.REFUSED


def test_a_session_lasts_its_lifetime_and_ends_with_the_password(database_url: str) -> None:
    with sessions(database_url).begin() as session:
        user = accounts.add_user(session, "ann", "right password", "admin")
        new = accounts.start_session(session, user, timedelta(hours=1))
        short = accounts.start_session(session, user, timedelta(seconds=-1))
    with sessions(database_url).begin() as session:
        stored = session.scalars(select(WebSessionRow.id_hash)).all()
        assert new.cookie not in stored and accounts.digest(new.cookie) in stored  # hashed
        principal = accounts.session_principal(session, new.cookie)
        assert principal is not None and principal.role == "admin"
        assert principal.csrf_token == new.csrf_token
        assert accounts.session_principal(session, short.cookie) is None  # expired
        assert accounts.session_principal(session, "forged") is None
    with sessions(database_url).begin() as session:
        accounts.set_password(session, "ann", "new password!")
    with sessions(database_url).begin() as session:
        assert accounts.session_principal(session, new.cookie) is None


def test_a_token_is_shown_once_stored_hashed_and_revoked(database_url: str) -> None:
    with sessions(database_url).begin() as session:
        value = accounts.create_token(session, "ci", "viewer")
    assert value.startswith("synmon_") and len(value) > 40
    with sessions(database_url).begin() as session:
        row = session.scalar(select(ApiTokenRow))
        assert row is not None and row.token_hash == accounts.digest(value)
        assert value not in row.token_hash
        principal = accounts.token_principal(session, value)
        assert principal is not None and (principal.name, principal.role) == ("ci", "viewer")
        assert accounts.token_principal(session, value + "x") is None
    with sessions(database_url).begin() as session:
        assert session.scalar(select(ApiTokenRow.last_used_at)) is not None
        accounts.revoke_token(session, "ci")
    with sessions(database_url).begin() as session:
        assert accounts.token_principal(session, value) is None
        with pytest.raises(AccountError, match="no token"):
            accounts.revoke_token(session, "ci")


def test_ensure_admin_makes_one_only_on_an_empty_installation(database_url: str) -> None:
    with sessions(database_url).begin() as session:
        made = accounts.ensure_admin(session)
    assert made is not None and made[0] == "admin" and len(made[1]) >= 16
    with sessions(database_url).begin() as session:
        assert accounts.ensure_admin(session) is None
        signed = accounts.authenticate(session, "admin", made[1], 5, LOCK)
        assert signed.user is not None and signed.user.role == "admin"


def invoke(database_url: str, *args: str, stdin: str | None = None) -> tuple[int, str]:
    runner = CliRunner()
    result = runner.invoke(
        main,
        list(args),
        input=stdin,
        env={"SYNMON_ENV": "test", "SYNMON_DATABASE_URL": database_url},
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def test_users_and_tokens_from_the_command_line(database_url: str) -> None:
    assert invoke(database_url, "users", "list")[1].startswith("no users")
    code, out = invoke(
        database_url, "users", "add", "ann", "--role", "admin", "--password-stdin",
        stdin="first password\n",
    )  # fmt: skip
    assert code == 0 and "added user ann (admin)" in out
    # From the prompt, asked twice.
    code, out = invoke(
        database_url, "users", "add", "bob", "--role", "viewer", stdin="bob password\n" * 2
    )
    assert code == 0, out
    code, out = invoke(database_url, "users", "add", "eve", "--role", "god", stdin="x\n")
    assert code == 2 and "'god' is not one of" in out
    code, out = invoke(
        database_url, "users", "add", "ann", "--role", "viewer", "--password-stdin",
        stdin="another password\n",
    )  # fmt: skip
    assert code == 1 and "exists already" in out
    listed = invoke(database_url, "users", "list")[1]
    assert "ann" in listed and "admin" in listed and "bob" in listed
    code, _ = invoke(
        database_url, "users", "set-password", "bob", "--password-stdin", stdin="new password\n"
    )
    assert code == 0
    with sessions(database_url).begin() as session:
        assert accounts.authenticate(session, "bob", "new password", 5, LOCK).user is not None
        assert accounts.authenticate(session, "ann", "first password", 5, LOCK).user is not None
    assert invoke(database_url, "users", "remove", "bob")[0] == 0
    assert "bob" not in invoke(database_url, "users", "list")[1]
    assert invoke(database_url, "users", "remove", "bob")[0] == 1

    code, out = invoke(database_url, "tokens", "create", "--name", "ci", "--role", "editor")
    assert code == 0
    value = out.strip().splitlines()[-1]
    with sessions(database_url).begin() as session:
        principal = accounts.token_principal(session, value)
        assert principal is not None and principal.role == "editor"
    listed = invoke(database_url, "tokens", "list")[1]
    assert "ci" in listed and "editor" in listed and value not in listed
    assert invoke(database_url, "tokens", "revoke", "ci")[0] == 0
    with sessions(database_url).begin() as session:
        assert accounts.token_principal(session, value) is None

"""Users, API tokens, sign-in sessions and check pauses: plain functions over a session.

Passwords are kept as argon2 hashes; tokens and session ids are long random values, so
a SHA-256 of each is what the database holds (a fast hash is enough for a value nobody
chose, and lets a lookup be one indexed equality).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.storage.accounts import ApiTokenRow, CheckPauseRow, UserRow, WebSessionRow
from app.storage.models import CheckRow
from config.errors import SynmonError

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")
RANK = {role: n for n, role in enumerate(ROLES)}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
# argon2 hashes whatever it is given; a bound keeps a megabyte "password" from costing a
# sign-in request more than a real one.
MAX_PASSWORD = 1024
MIN_PASSWORD = 8
TOKEN_PREFIX = "synmon_"  # noqa: S105 - a prefix that makes a leaked token findable
_HASHER = PasswordHasher()
# Verified against when the user does not exist, so that a sign-in takes as long for an
# unknown name as for a wrong password (no user enumeration by timing).
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class AccountError(SynmonError, ValueError):
    """A user or token operation refused; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a signed-in user or an API token, and the role it holds."""

    kind: Literal["user", "token"]
    name: str
    role: Role
    csrf_token: str | None = None  # a session's, for its forms; None for a token

    def can(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]


def _now() -> datetime:
    return datetime.now(UTC)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise AccountError(
            "a name is 1 to 64 letters, digits and . _ @ - (starting with a letter or digit)"
        )
    return name


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role[:32]!r}")


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(check_password(password))


# Users


def add_user(session: Session, name: str, password: str, role: str) -> UserRow:
    check_name(name)
    checked_role = check_role(role)
    if session.scalar(select(UserRow).where(UserRow.name == name)) is not None:
        raise AccountError(f"a user {name!r} exists already; `synmon users set-password` changes")
    user = UserRow(name=name, password_hash=hash_password(password), role=checked_role)
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[UserRow]:
    return list(session.scalars(select(UserRow).order_by(UserRow.name)))


def user_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(UserRow)) or 0)


def _user(session: Session, name: str) -> UserRow:
    user = session.scalar(select(UserRow).where(UserRow.name == name))
    if user is None:
        raise AccountError(f"no user {name[:64]!r}")
    return user


def remove_user(session: Session, name: str) -> None:
    user = _user(session, name)
    # SQLite does not enforce the foreign key's cascade: the sessions go explicitly.
    session.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user.id))
    session.delete(user)


def set_password(session: Session, name: str, password: str) -> None:
    user = _user(session, name)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    # A new password ends every sign-in made with the old one.
    session.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user.id))


def set_role(session: Session, name: str, role: str) -> None:
    _user(session, name).role = check_role(role)


@dataclass(frozen=True)
class SignIn:
    user: UserRow | None
    # Why it was refused, for the page; the same words for an unknown name and a wrong
    # password, so that the page does not tell which names exist.
    refused: str = ""


# One answer for every refused sign-in, locked or not (see authenticate).
REFUSED = "wrong name or password, or too many failed sign-ins in a row: try again later"


def authenticate(
    session: Session, name: str, password: str, attempts: int, lockout: timedelta
) -> SignIn:
    """The user ``name`` if ``password`` is theirs and they are not locked out.

    ``attempts`` failures in a row lock the user for ``lockout``; a success resets the
    count. Counted per user (not per client address): behind a proxy every client has
    the proxy's address, and a per-user lock is what stops guessing one password.
    """
    now = _now()
    user = (
        session.scalar(select(UserRow).where(UserRow.name == name).with_for_update())
        if NAME.fullmatch(name)
        else None
    )
    if user is None or len(password) > MAX_PASSWORD:
        _verify(_DUMMY_HASH, password[:MAX_PASSWORD])
        return SignIn(None, REFUSED)
    if user.locked_until is not None and user.locked_until > now:
        # The same answer, in the same time, as a wrong password: a different one would
        # tell a stranger which names exist.
        _verify(_DUMMY_HASH, password)
        return SignIn(None, REFUSED)
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= attempts:
            user.locked_until = now + lockout
            user.failed_logins = 0
        return SignIn(None, REFUSED)
    user.failed_logins = 0
    user.locked_until = None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    return SignIn(user)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def ensure_admin(session: Session) -> tuple[str, str] | None:
    """An admin with a generated password when there is no user at all: (name, password),
    or None when users exist (``synmon up`` prints what it creates)."""
    if user_count(session):
        return None
    password = secrets.token_urlsafe(15)
    add_user(session, "admin", password, "admin")
    return "admin", password


# Sessions


@dataclass(frozen=True)
class NewSession:
    cookie: str  # the value for the cookie; only its hash is stored
    csrf_token: str
    expires_at: datetime


def start_session(session: Session, user: UserRow, lifetime: timedelta) -> NewSession:
    now = _now()
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= now))
    session.add(
        WebSessionRow(
            id_hash=digest(cookie),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return NewSession(cookie, csrf, now + lifetime)


def session_principal(session: Session, cookie: str) -> Principal | None:
    if not cookie or len(cookie) > 128:
        return None
    found = session.execute(
        select(WebSessionRow, UserRow)
        .join(UserRow, UserRow.id == WebSessionRow.user_id)
        .where(WebSessionRow.id_hash == digest(cookie), WebSessionRow.expires_at > _now())
    ).first()
    if found is None:
        return None
    web_session, user = found
    return Principal("user", user.name, check_role(user.role), web_session.csrf_token)


def end_session(session: Session, cookie: str) -> None:
    if cookie and len(cookie) <= 128:
        session.execute(delete(WebSessionRow).where(WebSessionRow.id_hash == digest(cookie)))


def csrf_matches(principal: Principal, offered: str | None) -> bool:
    return (
        principal.csrf_token is not None
        and offered is not None
        and hmac.compare_digest(principal.csrf_token.encode(), offered.encode()[:256])
    )


# API tokens


def create_token(session: Session, name: str, role: str) -> str:
    """A new token; the value is returned once and only its hash is stored."""
    check_name(name)
    checked_role = check_role(role)
    if session.scalar(select(ApiTokenRow).where(ApiTokenRow.name == name)) is not None:
        raise AccountError(f"a token {name!r} exists already; revoke it first")
    value = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiTokenRow(name=name, token_hash=digest(value), role=checked_role))
    session.flush()
    return value


def list_tokens(session: Session) -> list[ApiTokenRow]:
    return list(session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.name)))


def revoke_token(session: Session, name: str) -> None:
    token = session.scalar(select(ApiTokenRow).where(ApiTokenRow.name == name))
    if token is None:
        raise AccountError(f"no token {name[:64]!r}")
    session.delete(token)


def token_principal(session: Session, value: str) -> Principal | None:
    if not value.startswith(TOKEN_PREFIX) or len(value) > 128:
        return None
    token = session.scalar(select(ApiTokenRow).where(ApiTokenRow.token_hash == digest(value)))
    if token is None:
        return None
    now = _now()
    # Written at most once a minute: a busy CI token would otherwise write on every call.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
    return Principal("token", token.name, check_role(token.role))


# Pauses


def pause_check(session: Session, check_id: str, by: str) -> bool:
    """Pause ``check_id``; False if it was paused already. AccountError if unknown."""
    if session.get(CheckRow, check_id) is None:
        raise LookupError(check_id)
    if session.get(CheckPauseRow, check_id) is not None:
        return False
    session.add(CheckPauseRow(check_id=check_id, paused_by=by, paused_at=_now()))
    return True


def resume_check(session: Session, check_id: str) -> bool:
    if session.get(CheckRow, check_id) is None:
        raise LookupError(check_id)
    pause = session.get(CheckPauseRow, check_id)
    if pause is None:
        return False
    session.delete(pause)
    return True

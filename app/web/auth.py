"""Who a request comes from, and whether it may do what it asks.

A request is signed in by an ``Authorization: Bearer`` API token or by the session
cookie the sign-in page sets. A request that changes something (any method but GET,
HEAD and OPTIONS) with the cookie must also carry the session's CSRF token, in the form
field ``csrf_token`` or the ``X-CSRF-Token`` header (htmx sends it): the cookie goes
along with any request a browser makes, the token only with the pages that hold it. A
bearer token is never sent by a browser on its own, so it needs none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from app.web.accounts import Principal, Role, csrf_matches, session_principal, token_principal
from app.web.accounts import user_count as count_users

if TYPE_CHECKING:
    from app.web.app import Web

SESSION_COOKIE = "synmon_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NO_USER = (
    "no user can sign in yet: add one with `synmon users add NAME --role admin` "
    "(the password is asked for, or read with --password-stdin)"
)


class SignInNeeded(Exception):
    """A page asked for signed out: the handler sends the browser to the sign-in page."""


class NoUser(Exception):
    """A page asked for on an installation without any user: the handler says how to add one."""


def web_of(request: Request) -> Web:
    web: Web = request.app.state.web
    return web


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    # Another scheme (a proxy's Basic login in front of synmon) is not an offer of a
    # token: the request is judged by its cookie, as if the header were not there.
    return value.strip() if scheme.lower() == "bearer" else None


def principal_of(request: Request) -> Principal | None:
    """The request's principal, or None. A request that offers a bearer token is judged
    by it alone: a wrong token does not fall back on a cookie sent along."""
    web = web_of(request)
    token = bearer(request)
    with web.sessions.begin() as session:
        if token is not None:
            return token_principal(session, token)
        cookie = request.cookies.get(SESSION_COOKIE)
        return session_principal(session, cookie) if cookie else None


def has_users(request: Request) -> bool:
    with web_of(request).sessions() as session:
        return count_users(session) > 0


async def offered_csrf(request: Request) -> str | None:
    offered = request.headers.get("x-csrf-token")
    if offered is not None:
        return offered
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get("csrf_token")
        return value if isinstance(value, str) else None
    return None


def allowed(role: Role, page: bool = False) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the request's principal if it holds ``role`` (and, for a change made
    with the session cookie, the CSRF token); else 401 (a page: the sign-in page) or 403."""

    async def dependency(request: Request) -> Principal:
        principal = await run_in_threadpool(principal_of, request)
        if principal is None:
            if page:
                if not await run_in_threadpool(has_users, request):
                    raise NoUser()
                raise SignInNeeded()
            raise HTTPException(401, "sign in or send an API token", {"WWW-Authenticate": "Bearer"})
        if not principal.can(role):
            raise HTTPException(
                403, f"this needs the {role} role; {principal.name} has {principal.role}"
            )
        if (
            request.method not in SAFE_METHODS
            and principal.kind == "user"
            and not csrf_matches(principal, await offered_csrf(request))
        ):
            raise HTTPException(403, "the CSRF token is missing or wrong: reload the page")
        return principal

    return dependency

"""Sign-in, roles, CSRF, the lockout and tokens over HTTP: every route for each role and
signed out."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from app.storage.db import sessions
from app.web.accounts import revoke_token
from tests.support.results import stored_run
from tests.web.support import PASSWORD, Site, csrf_of, make_site, sign_in, sync_checks

RUN_ID = uuid.UUID(int=7)


@pytest.fixture
def site(database_url: str) -> Site:
    site = make_site(database_url, SYNMON_METRICS_TOKEN="metrics-secret")
    sync_checks(
        site.settings, [{"id": "api", "type": "http", "request": {"url": "https://api.example"}}]
    )
    with sessions(database_url).begin() as session:
        session.add(stored_run(check_id="api", run_id=RUN_ID, root_run_id=RUN_ID))
    return site


READ_PAGES = [
    "/",
    "/partials/checks",
    "/checks/api",
    "/partials/checks/api/runs",
    f"/runs/{RUN_ID}",
]
READ_API = [
    "/api/checks",
    "/api/runs",
    "/api/checks/api/runs",
    "/api/v1/checks",
    "/api/v1/checks/api",
    "/api/v1/checks/api/runs",
    "/api/v1/runs",
    f"/api/v1/runs/{RUN_ID}",
    "/checks/api/chart.json",
    "/api/v1/openapi.json",
]
ADMIN_API = ["/api/v1/users", "/api/v1/tokens"]
EDIT_API = ["/api/v1/checks/api/pause", "/api/v1/checks/api/resume"]
OPEN = ["/healthz", "/login", "/static/vendor/htmx-2.0.11.min.js"]


def test_signed_out_reads_only_what_is_open(site: Site) -> None:
    client = site.client()
    for path in OPEN:
        assert client.get(path).status_code == 200, path
    for path in READ_PAGES:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=%2F"), path
    for path in [*READ_API, *ADMIN_API]:
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "error" in answer.json()
    for path in EDIT_API:
        assert client.post(path).status_code == 401, path


@pytest.mark.parametrize("how", ["session", "token"])
@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
def test_each_role_does_what_it_may(site: Site, role: str, how: str) -> None:
    client = site.as_role(role) if how == "session" else site.with_token(role)
    for path in READ_API:
        assert client.get(path).status_code == 200, (role, path)
    if how == "session":
        for path in READ_PAGES:
            assert client.get(path).status_code == 200, (role, path)
    for path in ADMIN_API:
        assert client.get(path).status_code == (200 if role == "admin" else 403), (role, path)
    csrf = {"X-CSRF-Token": session_csrf(client)} if how == "session" else {}
    for path in EDIT_API:
        answer = client.post(path, headers=csrf)
        assert answer.status_code == (403 if role == "viewer" else 200), (role, path, answer.text)
    if role == "viewer":
        assert "this needs the editor role" in client.post(EDIT_API[0], headers=csrf).text


def session_csrf(client: TestClient) -> str:
    """The session's CSRF token, from a page's sign-out form."""
    return csrf_of(client.get("/").text)


def test_admins_see_users_and_tokens_never_their_secrets(site: Site) -> None:
    client = site.with_token("admin")
    users = client.get("/api/v1/users").json()
    assert {u["name"]: u["role"] for u in users} == {
        "admin": "admin",
        "editor": "editor",
        "viewer": "viewer",
    }
    assert "password_hash" not in users[0]
    tokens = client.get("/api/v1/tokens").json()
    assert {t["name"] for t in tokens} == {"admin-token", "editor-token", "viewer-token"}
    assert all(set(t) == {"name", "role", "created_at", "last_used_at"} for t in tokens)


def test_a_change_with_the_cookie_needs_the_csrf_token(site: Site) -> None:
    client = site.as_role("editor")
    token = session_csrf(client)
    assert client.post("/api/v1/checks/api/pause").status_code == 403
    assert (
        client.post("/api/v1/checks/api/pause", headers={"X-CSRF-Token": "forged"}).status_code
        == 403
    )
    refused = client.post(
        "/checks/api/pause", data={"csrf_token": "forged"}, follow_redirects=False
    )
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert client.get("/api/v1/checks/api").json()["paused"] is False
    # The page's own form, with its token, works.
    page = client.get("/checks/api").text
    assert 'action="/checks/api/pause"' in page
    done = client.post("/checks/api/pause", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/checks/api"
    assert client.get("/api/v1/checks/api").json()["paused"] is True
    # Another user's token is not this session's.
    other = site.as_role("admin")
    assert session_csrf(other) != token
    assert other.post("/checks/api/resume", data={"csrf_token": token}).status_code == 403


def test_the_sign_in_form_has_its_own_csrf_cookie(site: Site) -> None:
    client = site.client()
    form = client.get("/login")
    cookie = form.cookies.get("synmon_login_csrf") or client.cookies.get("synmon_login_csrf")
    assert cookie and csrf_of(form.text) == cookie
    forged = client.post(
        "/login", data={"name": "admin", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert forged.status_code == 403
    fresh = site.client()  # a cross-site form: no cookie to repeat
    answer = fresh.post(
        "/login", data={"name": "admin", "password": PASSWORD, "csrf_token": cookie}
    )
    assert answer.status_code == 403


def test_the_session_cookie_is_httponly_and_samesite(site: Site) -> None:
    client = site.client()
    form = client.get("/login")
    answer = client.post(
        "/login",
        data={"name": "viewer", "password": PASSWORD, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "synmon_session" in v
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert "Max-Age=43200" in cookie  # SYNMON_WEB_SESSION_LIFETIME, 12 h by default


def test_secure_cookies_behind_https(database_url: str) -> None:
    site = make_site(database_url, SYNMON_WEB_PUBLIC_URL="https://synmon.example")
    client = site.client()
    form = client.get("/login")
    assert "Secure" in form.headers["set-cookie"]


def test_too_many_failed_sign_ins_lock_the_user(database_url: str) -> None:
    site = make_site(database_url, SYNMON_WEB_LOGIN_ATTEMPTS="3", SYNMON_WEB_LOCKOUT="10m")
    client = site.client()

    def attempt(password: str) -> int:
        form = client.get("/login")
        return client.post(
            "/login",
            data={"name": "viewer", "password": password, "csrf_token": csrf_of(form.text)},
            follow_redirects=False,
        ).status_code

    assert [attempt("wrong") for _ in range(3)] == [401, 401, 401]
    assert attempt(PASSWORD) == 401
    form = client.get("/login")
    refused = client.post(
        "/login",
        data={"name": "viewer", "password": PASSWORD, "csrf_token": csrf_of(form.text)},
    )
    assert refused.status_code == 401 and "too many failed sign-ins" in refused.text
    # Another user is not locked by it.
    assert sign_in(site.client(), "editor")


def test_next_stays_on_this_site(site: Site) -> None:
    for target, landed in [
        ("/checks/api", "/checks/api"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
    ]:
        client = site.client()
        form = client.get("/login")
        answer = client.post(
            "/login",
            data={"name": "viewer", "password": PASSWORD, "csrf_token": csrf_of(form.text),
                  "next": target},
            follow_redirects=False,
        )  # fmt: skip
        assert answer.headers["location"] == landed, target


def test_sign_out_ends_the_session(site: Site) -> None:
    client = site.as_role("viewer")
    token = session_csrf(client)
    cookie = client.cookies.get("synmon_session")
    answer = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    # The old cookie, replayed, no longer signs in.
    replay = site.client()
    replay.cookies.set("synmon_session", cookie or "")
    assert replay.get("/api/checks").status_code == 401


def test_a_revoked_token_is_refused_from_the_next_request(site: Site) -> None:
    client = site.with_token("viewer")
    assert client.get("/api/v1/checks").status_code == 200
    with sessions(site.settings.database_url).begin() as session:
        revoke_token(session, "viewer-token")
    assert client.get("/api/v1/checks").status_code == 401
    # A wrong bearer token does not fall back on a session cookie sent along.
    signed_in = site.as_role("admin")
    signed_in.headers["Authorization"] = "Bearer synmon_nope"
    assert signed_in.get("/api/v1/checks").status_code == 401


def test_metrics_asks_for_its_token_when_set(site: Site) -> None:
    client = site.client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    good = client.get("/metrics", headers={"Authorization": "Bearer metrics-secret"})
    assert good.status_code == 200 and good.text == "synmon_up 1\n"
    # A user's session is not the metrics token.
    assert site.as_role("admin").get("/metrics").status_code == 401


def test_without_any_user_the_dashboard_says_how_to_add_one(database_url: str) -> None:
    from tests.support.settings import make_settings
    from tests.web.support import Site as Bare

    client = Bare(make_settings(SYNMON_DATABASE_URL=database_url)).client()
    page = client.get("/")
    assert page.status_code == 503
    assert "synmon users add NAME --role admin" in page.text
    assert "synmon users add" in client.get("/login").text
    assert client.get("/healthz").status_code == 200


def test_pages_carry_a_content_security_policy(site: Site) -> None:
    page = site.as_role("viewer").get("/")
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'self'
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "<script>" not in page.text  # no inline script for the policy to refuse
    assert page.headers["X-Frame-Options"] == "DENY"

"""The web product for a test: its application over a real database, users of each role,
and clients signed in through the sign-in form as a browser would be."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import yaml
from fastapi.testclient import TestClient

from app.definitions.loader import load_text
from app.pipeline.sync import sync
from app.storage.accounts import UserRow
from app.storage.db import sessions
from app.web.accounts import create_token, hash_password
from app.web.app import create_app
from config.settings import Settings
from tests.support.settings import make_settings

PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, html[:500]
    return match.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> TestClient:
    form = client.get("/login")
    answer = client.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": csrf_of(form.text), "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text[:500]
    return client


def sync_checks(settings: Settings, checks: list[dict[str, object]]) -> None:
    with sessions(settings.database_url)() as session:
        sync(session, load_text(yaml.safe_dump({"checks": checks}), "c.yaml", settings))


@dataclass
class Site:
    settings: Settings
    metrics: Callable[[], bytes] | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self) -> TestClient:
        return TestClient(create_app(self.settings, self.metrics), base_url="http://127.0.0.1")

    def as_role(self, role: str) -> TestClient:
        return sign_in(self.client(), role)

    def with_token(self, role: str) -> TestClient:
        client = self.client()
        client.headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return client


def make_site(database_url: str, **env: str) -> Site:
    """A site with a user and a token of each role (the user named as the role)."""
    settings = make_settings(SYNMON_DATABASE_URL=database_url, **env)
    site = Site(settings, lambda: b"synmon_up 1\n")
    with sessions(database_url).begin() as session:
        for role in ("viewer", "editor", "admin"):
            # One argon2 hash for every test's users: hashing is slow on purpose.
            session.add(UserRow(name=role, password_hash=password_hash(), role=role))
            site.tokens[role] = create_token(session, f"{role}-token", role)
    return site


@cache
def password_hash() -> str:
    return hash_password(PASSWORD)

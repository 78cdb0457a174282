"""The dashboard's pages through TestClient: a run's assertions with expected and actual,
its timings and redacted excerpt; a browser run's steps and screenshot; the chart's data;
the checks list's paging; the check page's actions by role."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.storage.db import sessions
from tests.support.results import stored_run
from tests.web.support import Site, csrf_of, make_site, sync_checks

HTTP_RUN = uuid.UUID(int=1)
BROWSER_RUN = uuid.UUID(int=2)


@pytest.fixture
def site(database_url: str, tmp_path: Path) -> Site:
    site = make_site(database_url, SYNMON_DATA_DIR=str(tmp_path / "data"))
    sync_checks(
        site.settings,
        [
            {"id": "api", "type": "http", "request": {"url": "https://api.example"}},
            {"id": "login", "type": "browser",
             "browser": {"steps": [{"goto": "https://shop.example/"}]}},
        ],
    )  # fmt: skip
    key = f"login/{BROWSER_RUN}/00-failure.png"
    (tmp_path / "data" / "artifacts" / "login" / str(BROWSER_RUN)).mkdir(parents=True)
    (tmp_path / "data" / "artifacts" / key).write_bytes(b"\x89PNG fake")
    (tmp_path / "data" / "secret.txt").write_text("not an artifact")
    now = datetime.now(UTC)
    with sessions(database_url).begin() as session:
        session.add(
            stored_run(
                check_id="api",
                run_id=HTTP_RUN,
                root_run_id=HTTP_RUN,
                status="failed",
                error="assertion failed: status_code equals 200",
                error_kind="assertion",
                timings={"dns_ms": 2.0, "connect_ms": 10.0, "first_byte_ms": 80.0},
                assertions=[
                    {"source": "status_code", "property": None, "comparison": "equals",
                     "target": 200, "actual": 503, "passed": False},
                    {"source": "body", "property": None, "comparison": "contains",
                     "target": "<ok>", "actual": "<ok>", "passed": True},
                ],
                response={"status_code": 503, "headers": {"Server": "nginx", "Set-Cookie": "[REDACTED]"},
                          "body_excerpt": "token=[REDACTED] <script>alert(1)</script>"},
            )
        )  # fmt: skip
        session.add(
            stored_run(
                check_id="login",
                kind="browser",
                run_id=BROWSER_RUN,
                root_run_id=BROWSER_RUN,
                status="failed",
                assertions=[{"step": 1, "action": "goto", "passed": False, "duration_ms": 12.5}],
                response={"console_errors": ["Uncaught TypeError: x is undefined"],
                          "failed_requests": [{"url": "https://tracker.example/p.js",
                                               "reason": "refused by the guard"}]},
                artifacts=[
                    {"name": "failure", "key": key, "content_type": "image/png", "bytes": 10},
                    {"name": "escape", "key": "../secret.txt", "content_type": "image/png"},
                    {"name": "log", "key": "x.txt", "content_type": "text/plain"},
                ],
            )
        )  # fmt: skip
        for n in range(6):
            run_id = uuid.UUID(int=100 + n)
            session.add(
                stored_run(
                    check_id="api",
                    run_id=run_id,
                    root_run_id=run_id,
                    location="eu-west-1" if n % 2 else "us-east-1",
                    duration_ms=100.0 + n,
                    started_at=now - timedelta(minutes=n + 1),
                    scheduled_at=now - timedelta(minutes=n + 1),
                )
            )
    return site


def test_a_run_shows_assertions_timings_headers_and_the_redacted_excerpt(site: Site) -> None:
    page = site.as_role("viewer").get(f"/runs/{HTTP_RUN}")
    assert page.status_code == 200
    text = page.text
    rows = re.findall(r"<tr class=\"(pass|fail)\">(.*?)</tr>", text, re.S)
    assert [kind for kind, _ in rows] == ["fail", "pass"]
    failed = rows[0][1]
    assert "status_code" in failed and "equals 200" in failed and "503" in failed
    assert "FAIL" in failed  # in words, not only red
    assert "&lt;ok&gt;" in rows[1][1]
    for name in ("dns_ms", "connect_ms", "first_byte_ms"):
        assert name in text
    assert "80 ms" in text and 'style="width: 100.0%"' in text  # the longest, full width
    assert "nginx" in text and "[REDACTED]" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert" not in text


def test_a_browser_run_shows_steps_console_errors_refused_requests_and_screenshots(
    site: Site,
) -> None:
    client = site.as_role("viewer")
    text = client.get(f"/runs/{BROWSER_RUN}").text
    assert "<h2>Steps</h2>" in text and "goto" in text and "12 ms" in text
    assert "Uncaught TypeError: x is undefined" in text
    assert "https://tracker.example/p.js" in text and "refused by the guard" in text
    assert f'src="/runs/{BROWSER_RUN}/artifacts/0"' in text
    assert f"/runs/{BROWSER_RUN}/artifacts/2" not in text  # not an image
    shot = client.get(f"/runs/{BROWSER_RUN}/artifacts/0")
    assert shot.status_code == 200 and shot.headers["content-type"] == "image/png"
    assert shot.content == b"\x89PNG fake"
    # A key that climbs out of the artifact folder reads nothing; nor does a non-image.
    assert client.get(f"/runs/{BROWSER_RUN}/artifacts/1").status_code == 404
    assert client.get(f"/runs/{BROWSER_RUN}/artifacts/2").status_code == 404
    assert client.get(f"/runs/{BROWSER_RUN}/artifacts/9").status_code == 404
    assert client.get(f"/runs/{BROWSER_RUN}/artifacts/-1").status_code == 400
    signed_out = site.client().get(f"/runs/{BROWSER_RUN}/artifacts/0", follow_redirects=False)
    assert signed_out.status_code == 303


def test_the_chart_has_a_column_per_location(site: Site) -> None:
    client = site.as_role("viewer")
    chart = client.get("/checks/api/chart.json?window=1h").json()
    assert chart["locations"] == ["eu-west-1", "us-east-1"]
    times, eu, us = chart["data"]
    assert times == sorted(times) and len(times) >= 6
    # Oldest first; the failed run of the fixture (1 ms, just now) last.
    assert [v for v in eu if v is not None] == [105.0, 103.0, 101.0, 1.0]
    assert [v for v in us if v is not None][-3:] == [104.0, 102.0, 100.0]
    assert all((a is None) != (b is None) for a, b in zip(eu, us, strict=True))
    assert client.get("/checks/api/chart.json?window=1y").status_code == 400
    page = client.get("/checks/api?window=1h").text
    assert 'data-src="/checks/api/chart.json?window=1h"' in page
    assert page.count('class="bar bar-') == 90


def test_the_checks_list_pages_by_fifty(database_url: str) -> None:
    site = make_site(database_url)
    sync_checks(
        site.settings,
        [
            {"id": f"c{n:03d}", "type": "http", "request": {"url": "https://x.example"}}
            for n in range(60)
        ],
    )
    client = site.as_role("viewer")
    first = client.get("/").text
    assert first.count("<tr data-check=") == 50
    assert 'href="/?cursor=c049" rel="next"' in first
    second = client.get("/?cursor=c049").text
    assert second.count("<tr data-check=") == 10 and 'rel="next"' not in second
    assert "c050" in second and "First page" in second
    # The live refresh asks for the same page.
    assert 'hx-get="/partials/checks?cursor=c049"' in second
    assert client.get("/partials/checks?cursor=c049").text.count("<tr data-check=") == 10


def test_actions_show_for_editors_only_and_pause_from_the_page(site: Site) -> None:
    assert "Run now" not in site.as_role("viewer").get("/checks/api").text
    editor = site.as_role("editor")
    page = editor.get("/checks/api").text
    assert "Run now" in page and ">Pause</button>" in page
    viewer = site.as_role("viewer")
    refused = viewer.post("/checks/api/pause", data={"csrf_token": csrf_of(viewer.get("/").text)})
    assert refused.status_code == 403
    done = editor.post("/checks/api/pause", data={"csrf_token": csrf_of(page)})
    assert done.status_code == 200 and ">Resume</button>" in done.text and "paused" in done.text
    assert 'class="flag">paused' in editor.get("/").text
    editor.post("/checks/api/resume", data={"csrf_token": csrf_of(page)})
    assert ">Pause</button>" in editor.get("/checks/api").text
    assert editor.get("/checks/nope").status_code == 404
    assert editor.get("/runs/not-a-uuid").status_code == 400


def test_the_check_page_lists_incidents_and_notifications(site: Site) -> None:
    from app.storage.incidents import IncidentRow
    from app.storage.models import NotificationRow

    now = datetime.now(UTC)
    with sessions(site.settings.database_url).begin() as session:
        session.add(
            IncidentRow(check_id="api", opened_at=now - timedelta(hours=2), opened_by_run=HTTP_RUN,
                        locations=["eu-west-1"], closed_at=now - timedelta(hours=1),
                        closed_by_run=uuid.UUID(int=100))
        )  # fmt: skip
        session.add(
            IncidentRow(check_id="api", opened_at=now, opened_by_run=uuid.UUID(int=101),
                        locations=["eu-west-1", "us-east-1"])
        )  # fmt: skip
        session.add(
            NotificationRow(check_id="api", channel_id="ops-slack", event="failure",
                            run_id=HTTP_RUN, payload={}, status="failed", attempts=3,
                            last_error="HTTP 500 from <slack>")
        )  # fmt: skip
    page = site.as_role("viewer").get("/checks/api").text
    incidents = page.split('<h2 id="incidents">', 1)[1].split('<h2 id="notifications">', 1)[0]
    assert incidents.count("<tr><td>") == 2
    assert "<strong>open</strong>" in incidents and "eu-west-1, us-east-1" in incidents
    assert f'href="/runs/{HTTP_RUN}"' in incidents
    notifications = page.split('<h2 id="notifications">', 1)[1]
    assert "ops-slack" in notifications and "failed (3 attempts)" in notifications
    assert "HTTP 500 from &lt;slack&gt;" in notifications
    assert "No notification sent." in site.as_role("viewer").get("/checks/login").text

"""The web product's pages and its first JSON API (/api/checks, /api/runs), over a real
database, through FastAPI's TestClient; the same behaviours the wsgiref status page had,
now behind a sign-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.ops.report import Line, totals
from app.pipeline.check_cache import CheckCache
from app.pipeline.ingest import store_results
from app.storage.db import sessions
from app.web.documents import check_documents
from tests.support.results import run_result, stored_run
from tests.web.support import Site, make_site, sync_checks


@pytest.fixture
def site(database_url: str) -> Site:
    site = make_site(database_url)
    sync_checks(
        site.settings,
        [{"id": "shop-home", "name": "Shop <home>", "type": "http",
          "request": {"url": "https://shop.example"}}],
    )  # fmt: skip
    with sessions(database_url).begin() as session:
        session.add(
            stored_run(
                check_id="shop-home",
                status="failed",
                duration_ms=42.0,
                timings={"dns_ms": 1.0},
                error="boom <b>",
                response={"status_code": 500},
            )
        )
    return site


def test_pages_and_api(site: Site) -> None:
    client = site.as_role("viewer")
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "Shop &lt;home&gt;" in page.text and "<home>" not in page.text  # escaped
    # The filter form sends every field, the empty ones as "any".
    assert "Shop &lt;home&gt;" in client.get("/?q=&state=&type=&location=&tag=").text
    assert "Shop &lt;home&gt;" in client.get("/?q=HOME&state=unknown&type=http").text
    assert "No check matches" in client.get("/?q=nothing-like-it").text
    assert client.get("/?state=sad").json()["error"].startswith("state: ")
    check_page = client.get("/checks/shop-home")
    assert "boom &lt;b&gt;" in check_page.text and "boom <b>" not in check_page.text
    (check,) = client.get("/api/checks").json()
    assert (
        check["id"] == "shop-home"
        and check["state"] == "unknown"
        and check["locations"] == ["eu-west-1", "us-east-1"]
    )
    # The last run comes from the runs, whether or not it moved the check's state.
    last_run = datetime.fromisoformat(check["last_run_at"])
    assert timedelta(0) <= datetime.now(UTC) - last_run < timedelta(minutes=5)
    runs = client.get("/api/checks/shop-home/runs?since=1h").json()
    assert [r["status"] for r in runs] == ["failed"] and runs[0]["timings"] == {"dns_ms": 1.0}
    assert client.get("/api/runs?since=1h&limit=5").json()[0]["error"] == "boom <b>"
    # The first API brought a whole-number limit into range rather than refusing it.
    assert len(client.get("/api/runs?since=1h&limit=0").json()) == 1
    assert client.get("/api/runs?since=soon").status_code == 400
    anonymous = site.client()
    assert anonymous.get("/healthz").json() == {"ok": True}
    assert anonymous.get("/metrics").text == "synmon_up 1\n"
    assert client.get("/nope").status_code == 404
    assert client.get("/api/nope").json() == {"error": "not found"}
    # The demo target is `synmon up`'s alone: no make-believe sign-in form elsewhere.
    assert client.get("/demo/login").status_code == 404


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("since=soon", "since"),
        ("since=99999999999h", "since"),
        ("since=1e400", "since"),
        ("since=-5m", "since"),
        ("since=" + "1" * 5000, "since"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=" + "9" * 5000, "limit"),
        ("limit=1.5", "limit"),
    ],
)
def test_a_bad_query_parameter_is_a_400_naming_it(site: Site, query: str, parameter: str) -> None:
    client = site.as_role("viewer")
    for path in ("/api/runs", "/api/checks/shop-home/runs", "/api/v1/runs"):
        answer = client.get(f"{path}?{query}")
        assert answer.status_code == 400, (path, query, answer.text[:200])
        assert answer.json()["error"].startswith(f"{parameter}: "), answer.text[:200]


def test_each_location_shows_its_own_state(database_url: str) -> None:
    site = make_site(database_url, SYNMON_LOCATIONS="eu-west-1,us-east-1,ap-south-1")
    sync_checks(
        site.settings,
        [
            {
                "id": "api",
                "type": "http",
                "locations": ["eu-west-1", "us-east-1", "ap-south-1"],
                "request": {"url": "https://api.example"},
                "retry": {"strategy": "none"},
            }
        ],
    )
    with sessions(database_url).begin() as session:
        store_results(
            session,
            [
                run_result(location="eu-west-1", status="failed", error="refused"),
                run_result(location="us-east-1", status="degraded"),
            ],
            site.settings,
            CheckCache(),
        )
    client = site.as_role("viewer")
    (check,) = client.get("/api/checks").json()
    assert check["state"] == "failing"
    assert check["location_states"] == {
        "eu-west-1": "failing",
        "us-east-1": "degraded",
        "ap-south-1": "unknown",
    }
    # Each state in words beside its colour and symbol.
    page = client.get("/").text
    assert 'eu-west-1: <span class="state state-failing">' in page
    assert 'ap-south-1: <span class="state state-unknown">' in page
    assert "</span> failing</span>" in page and "</span> unknown</span>" in page


def test_api_checks_gives_uptime_over_24_hours_7_and_30_days(database_url: str) -> None:
    site = make_site(database_url)
    settings = site.settings
    sync_checks(
        settings,
        [
            {"id": id_, "type": "http", "request": {"url": "https://api.example"}}
            for id_ in ("api", "idle")
        ],
    )
    now = datetime.now(UTC)
    ago = [timedelta(hours=3), timedelta(hours=4), timedelta(days=3), timedelta(days=20)]
    statuses = ["passed", "degraded", "failed", "failed"]
    with sessions(database_url).begin() as session:
        store_results(
            session,
            [
                run_result(status=status, scheduled_at=now - back, started_at=now - back)
                for back, status in zip(ago, statuses, strict=True)
            ],
            settings,
            CheckCache(),
        )
    with sessions(database_url)() as session:
        by_id = {check["id"]: check for check in check_documents(session, settings)}
    assert by_id["api"]["uptime"] == {"24h": 100.0, "7d": pytest.approx(66.6667), "30d": 50.0}
    assert by_id["idle"]["uptime"] == {"24h": None, "7d": None, "30d": None}
    # p95 over the last 24 hours, as `synmon report` reads it from the same rollups.
    with sessions(database_url)() as session:
        _, _, found = totals(session, timedelta(hours=24), check_id="api")
    assert by_id["api"]["p95_ms_24h"] == Line.of("api", found["api"]).p95_ms is not None
    assert by_id["idle"]["p95_ms_24h"] is None
    # The same numbers over HTTP, on the page too.
    over_http = {c["id"]: c for c in site.as_role("viewer").get("/api/checks").json()}
    assert over_http["api"]["uptime"] == by_id["api"]["uptime"]
    assert "66.67%" in site.as_role("viewer").get("/").text

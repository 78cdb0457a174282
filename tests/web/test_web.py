"""The status page and JSON API, served for real and read over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from app.definitions.loader import load_text
from app.pipeline.sync import sync
from app.storage.db import sessions
from app.web.wsgi import StatusApp, serve
from tests.support.results import stored_run
from tests.support.servers import shut_down
from tests.support.settings import make_settings


@pytest.fixture
def site(database_url: str) -> Iterator[str]:
    settings = make_settings(SYNMON_DATABASE_URL=database_url)
    with sessions(database_url)() as session:
        sync(
            session,
            load_text(
                yaml.safe_dump(
                    {
                        "checks": [
                            {
                                "id": "shop-home",
                                "name": "Shop <home>",
                                "type": "http",
                                "request": {"url": "https://shop.example"},
                            },
                        ]
                    }
                ),
                "c.yaml",
                settings,
            ),
        )
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
    server, _ = serve(StatusApp(settings, lambda: b"synmon_up 1\n"), "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        shut_down(server)


def test_pages_and_api(site: str, tmp_path: Path) -> None:
    page = requests.get(site + "/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "Shop &lt;home&gt;" in page.text and "boom &lt;b&gt;" in page.text  # escaped
    (check,) = requests.get(site + "/api/checks", timeout=10).json()
    assert (
        check["id"] == "shop-home"
        and check["state"] == "unknown"
        and check["locations"] == ["eu-west-1", "us-east-1"]
    )
    # The last run comes from the runs, whether or not it moved the check's state.
    last_run = datetime.fromisoformat(check["last_run_at"])
    assert timedelta(0) <= datetime.now(UTC) - last_run < timedelta(minutes=5)
    runs = requests.get(site + "/api/checks/shop-home/runs?since=1h", timeout=10).json()
    assert [r["status"] for r in runs] == ["failed"] and runs[0]["timings"] == {"dns_ms": 1.0}
    assert (
        requests.get(site + "/api/runs?since=1h&limit=5", timeout=10).json()[0]["error"]
        == "boom <b>"
    )
    assert requests.get(site + "/api/runs?since=soon", timeout=10).status_code == 400
    assert requests.get(site + "/healthz", timeout=10).json() == {"ok": True}
    assert requests.get(site + "/metrics", timeout=10).text == "synmon_up 1\n"
    assert requests.get(site + "/nope", timeout=10).status_code == 404
    # The demo target is `synmon up`'s alone: no sign-in form on a real status page.
    assert requests.get(site + "/demo/login", timeout=10).status_code == 404


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("since=soon", "since"),
        ("since=99999999999h", "since"),
        ("since=1e400", "since"),
        ("since=-5m", "since"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=" + "9" * 5000, "limit"),
        ("limit=1.5", "limit"),
    ],
)
def test_a_bad_query_parameter_is_a_400_naming_it(site: str, query: str, parameter: str) -> None:
    for path in ("/api/runs", "/api/checks/shop-home/runs"):
        answer = requests.get(f"{site}{path}?{query}", timeout=10)
        assert answer.status_code == 400, (path, query, answer.text[:200])
        assert answer.json()["error"].startswith(f"{parameter}: ")


def test_each_location_shows_its_own_state(database_url: str) -> None:
    from app.pipeline.check_cache import CheckCache
    from app.pipeline.ingest import store_results
    from tests.support.results import run_result

    settings = make_settings(
        SYNMON_DATABASE_URL=database_url, SYNMON_LOCATIONS="eu-west-1,us-east-1,ap-south-1"
    )
    text = yaml.safe_dump(
        {
            "checks": [
                {
                    "id": "api",
                    "type": "http",
                    "locations": ["eu-west-1", "us-east-1", "ap-south-1"],
                    "request": {"url": "https://api.example"},
                    "retry": {"strategy": "none"},
                }
            ]
        }
    )
    with sessions(database_url)() as session:
        sync(session, load_text(text, "c.yaml", settings))
    with sessions(database_url).begin() as session:
        store_results(
            session,
            [
                run_result(location="eu-west-1", status="failed", error="refused"),
                run_result(location="us-east-1", status="degraded"),
            ],
            settings,
            CheckCache(),
        )
    server, _ = serve(StatusApp(settings), "127.0.0.1", 0)
    try:
        site = f"http://127.0.0.1:{server.server_address[1]}"
        (check,) = requests.get(site + "/api/checks", timeout=10).json()
        assert check["state"] == "failing"
        assert check["location_states"] == {
            "eu-west-1": "failing",
            "us-east-1": "degraded",
            "ap-south-1": "unknown",
        }
        page = requests.get(site + "/", timeout=10).text
        assert "eu-west-1: failing" in page and "ap-south-1: unknown" in page
    finally:
        shut_down(server)


def test_api_checks_gives_uptime_over_24_hours_7_and_30_days(database_url: str) -> None:
    from app.pipeline.check_cache import CheckCache
    from app.pipeline.ingest import store_results
    from tests.support.results import run_result

    settings = make_settings(SYNMON_DATABASE_URL=database_url)
    text = yaml.safe_dump(
        {
            "checks": [
                {"id": id_, "type": "http", "request": {"url": "https://api.example"}}
                for id_ in ("api", "idle")
            ]
        }
    )
    with sessions(database_url)() as session:
        sync(session, load_text(text, "c.yaml", settings))
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
    by_id = {check["id"]: check for check in StatusApp(settings).checks()}
    assert by_id["api"]["uptime"] == {"24h": 100.0, "7d": pytest.approx(66.6667), "30d": 50.0}
    assert by_id["idle"]["uptime"] == {"24h": None, "7d": None, "30d": None}

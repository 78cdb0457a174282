"""The REST API v1 over a real database: filters, cursor paging that never skips or
repeats, bounded parameters, run detail, pause and resume, trigger through real SQS."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.pipeline.queues import queue_name
from app.pipeline.sqs import client, create_queues, queue_urls
from app.storage.db import sessions
from tests.support.processes import moto_server
from tests.support.results import stored_run
from tests.web.support import Site, make_site, sync_checks

CHECKS = [
    {"id": "api-eu", "type": "http", "locations": ["eu-west-1"], "tags": ["api", "eu"],
     "request": {"url": "https://eu.example"}},
    {"id": "api-us", "name": "US API", "type": "http", "locations": ["us-east-1"],
     "tags": ["api"], "request": {"url": "https://us.example"}},
    {"id": "shop-login", "type": "browser", "tags": ["shop"],
     "browser": {"steps": [{"goto": "https://shop.example/"}]}},
]  # fmt: skip


@pytest.fixture
def site(database_url: str) -> Site:
    site = make_site(database_url)
    sync_checks(site.settings, CHECKS)
    return site


def ids(answer: dict[str, object]) -> list[str]:
    checks = answer["checks"]
    assert isinstance(checks, list)
    return [c["id"] for c in checks]


def test_checks_filter_by_type_tag_location_state_and_search(site: Site) -> None:
    client = site.with_token("viewer")
    assert ids(client.get("/api/v1/checks").json()) == ["api-eu", "api-us", "shop-login"]
    assert ids(client.get("/api/v1/checks?type=browser").json()) == ["shop-login"]
    assert ids(client.get("/api/v1/checks?tag=api").json()) == ["api-eu", "api-us"]
    # shop-login runs in the installation's locations (it names none).
    assert ids(client.get("/api/v1/checks?location=us-east-1").json()) == ["api-us", "shop-login"]
    assert ids(client.get("/api/v1/checks?q=us%20api").json()) == ["api-us"]  # the name
    assert ids(client.get("/api/v1/checks?q=LOGIN").json()) == ["shop-login"]
    assert ids(client.get("/api/v1/checks?q=%25").json()) == []  # LIKE's wildcard, escaped
    assert ids(client.get("/api/v1/checks?state=unknown").json()) == [c["id"] for c in CHECKS]
    assert ids(client.get("/api/v1/checks?state=failing").json()) == []
    one = client.get("/api/v1/checks/api-eu").json()
    assert one["tags"] == ["api", "eu"] and one["uptime"] == {"24h": None, "7d": None, "30d": None}
    assert one["location_states"] == {"eu-west-1": "unknown"} and one["paused"] is False
    assert client.get("/api/v1/checks/nope").status_code == 404


def test_checks_page_by_cursor_without_skipping_or_repeating(site: Site) -> None:
    client = site.with_token("viewer")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        answer = client.get(
            "/api/v1/checks", params={"limit": 1, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += ids(answer)
        pages += 1
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert seen == ["api-eu", "api-us", "shop-login"] and pages == 3
    two = client.get("/api/v1/checks?tag=api&limit=1").json()
    assert ids(two) == ["api-eu"] and two["next_cursor"] == "api-eu"
    rest = client.get("/api/v1/checks?tag=api&limit=1&cursor=api-eu").json()
    assert ids(rest) == ["api-us"] and rest["next_cursor"] is None


def test_runs_page_by_cursor_across_runs_that_started_at_the_same_moment(site: Site) -> None:
    now = datetime.now(UTC).replace(microsecond=123456)
    with sessions(site.settings.database_url).begin() as session:
        for n in range(7):
            run_id = uuid.UUID(int=n + 1)
            session.add(
                stored_run(
                    check_id="api-eu",
                    run_id=run_id,
                    root_run_id=run_id,
                    # Three runs share one moment: the cursor tells them apart.
                    started_at=now - timedelta(seconds=min(n, 3)),
                    scheduled_at=now - timedelta(seconds=min(n, 3)),
                    status="failed" if n % 2 else "passed",
                )
            )
    client = site.with_token("viewer")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "since": "1h", **({"cursor": cursor} if cursor else {})}
        answer = client.get("/api/v1/checks/api-eu/runs", params=params).json()
        seen += [r["run_id"] for r in answer["runs"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(str(uuid.UUID(int=n + 1)) for n in range(7))
    assert len(seen) == len(set(seen))
    failed = client.get("/api/v1/runs?status=failed&since=1h").json()["runs"]
    assert len(failed) == 3 and {r["status"] for r in failed} == {"failed"}
    detail = client.get(f"/api/v1/runs/{uuid.UUID(int=1)}").json()
    assert detail["check_id"] == "api-eu" and "response" in detail and "assertions" in detail
    assert client.get(f"/api/v1/runs/{uuid.UUID(int=99)}").status_code == 404
    assert client.get("/api/v1/checks/nope/runs").status_code == 404


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/v1/checks?limit=0", "limit"),
        ("/api/v1/checks?limit=501", "limit"),
        ("/api/v1/checks?limit=" + "9" * 400, "limit"),
        ("/api/v1/checks?state=sad", "state"),
        ("/api/v1/checks?type=ftp", "type"),
        ("/api/v1/checks?tag=" + "t" * 65, "tag"),
        ("/api/v1/checks?location=a%20b", "location"),
        ("/api/v1/checks?q=" + "q" * 101, "q"),
        ("/api/v1/checks?cursor=%00", "cursor"),
        ("/api/v1/checks/" + "c" * 65, "check_id"),
        ("/api/v1/runs?since=forever", "since"),
        ("/api/v1/runs?since=99999999999d", "since"),
        ("/api/v1/runs?cursor=abc", "cursor"),
        ("/api/v1/runs?cursor=99999999999999999999.1", "cursor"),
        ("/api/v1/runs?limit=1001", "limit"),
        ("/api/v1/runs?status=ok", "status"),
        ("/api/v1/runs/not-a-uuid", "run_id"),
        ("/api/v1/checks/api-eu/runs?location=..%2F..", "location"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(site: Site, path: str, parameter: str) -> None:
    answer = site.with_token("viewer").get(path)
    assert answer.status_code == 400, (path, answer.text[:300])
    assert answer.json()["error"].startswith(f"{parameter}: "), answer.text[:300]


def test_pause_and_resume_are_flags_that_sync_leaves_alone(site: Site) -> None:
    client = site.with_token("editor")
    assert client.post("/api/v1/checks/api-eu/pause").json() == {
        "id": "api-eu",
        "paused": True,
        "changed": True,
    }
    assert client.post("/api/v1/checks/api-eu/pause").json()["changed"] is False
    sync_checks(site.settings, CHECKS)  # the definitions again, as `synmon sync` would
    assert client.get("/api/v1/checks/api-eu").json()["paused"] is True
    assert ids(client.get("/api/v1/checks?tag=eu").json()) == ["api-eu"]
    assert client.post("/api/v1/checks/api-eu/resume").json()["changed"] is True
    assert client.get("/api/v1/checks/api-eu").json()["paused"] is False
    assert client.post("/api/v1/checks/nope/pause").status_code == 404


def test_the_openapi_document_describes_the_api(site: Site) -> None:
    # Behind a sign-in, like the API it describes.
    assert site.client().get("/api/v1/openapi.json").status_code == 401
    assert site.client().get("/api/v1/docs", follow_redirects=False).status_code == 303
    client = site.as_role("viewer")
    document = client.get("/api/v1/openapi.json").json()
    paths = document["paths"]
    for path in (
        "/api/v1/checks",
        "/api/v1/checks/{check_id}",
        "/api/v1/checks/{check_id}/runs",
        "/api/v1/runs/{run_id}",
        "/api/v1/checks/{check_id}/trigger",
        "/api/v1/checks/{check_id}/pause",
    ):
        assert path in paths, path
    limit = next(p for p in paths["/api/v1/checks"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 500
    # Only the API: no page, no first-API route in the document.
    assert all(path.startswith("/api/v1/") for path in paths)
    # The interactive docs, from the vendored Swagger UI: nothing from a CDN.
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "/static/vendor/swagger-ui-5.35.0-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower() and "https://" not in docs.text
    assert site.client().get("/static/vendor/swagger-ui-5.35.0-bundle.js").status_code == 200
    assert site.client().get("/static/vendor/swagger-ui-5.35.0.css").status_code == 200


@pytest.mark.processes
def test_trigger_sends_a_run_request_per_location(database_url: str) -> None:
    with moto_server() as moto:
        site = make_site(database_url, SYNMON_SQS_ENDPOINT=moto.endpoint)
        sync_checks(site.settings, CHECKS)
        create_queues(site.settings)
        viewer = site.with_token("viewer")
        assert viewer.post("/api/v1/checks/shop-login/trigger").status_code == 403
        editor = site.with_token("editor")
        answer = editor.post("/api/v1/checks/shop-login/trigger")
        assert answer.status_code == 202, answer.text
        run_ids = answer.json()["run_ids"]
        assert len(run_ids) == 2  # the installation's two locations
        one = editor.post("/api/v1/checks/shop-login/trigger?location=us-east-1").json()
        assert len(one["run_ids"]) == 1
        assert editor.post("/api/v1/checks/nope/trigger").status_code == 404
        assert editor.post("/api/v1/checks/shop-login/trigger?location=mars").status_code == 404
        counts = {}
        for location in site.settings.locations:
            name = queue_name(site.settings, "run", location, "browser")
            url = queue_urls(site.settings)(name)
            attributes = client(site.settings).get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            counts[location] = int(attributes["ApproximateNumberOfMessages"])
        assert counts == {"eu-west-1": 1, "us-east-1": 2}


def test_admins_manage_users_and_tokens_over_the_api(site: Site) -> None:
    admin = site.with_token("admin")
    made = admin.post("/api/v1/users", json={"name": "dan", "role": "viewer", "password": "x" * 12})
    assert made.status_code == 201 and made.json()["name"] == "dan"
    assert "password" not in made.text
    again = admin.post(
        "/api/v1/users", json={"name": "dan", "role": "viewer", "password": "y" * 12}
    )
    assert again.status_code == 409
    bad = admin.post("/api/v1/users", json={"name": "d an", "role": "root", "password": "short"})
    assert bad.status_code == 400
    assert {"name", "role", "password"} <= {
        part.split(":")[0] for part in bad.json()["error"].split("; ")
    }
    assert (
        site.with_token("editor")
        .post("/api/v1/users", json={"name": "eve", "role": "admin", "password": "x" * 12})
        .status_code
        == 403
    )

    token = admin.post("/api/v1/tokens", json={"name": "deploy", "role": "editor"})
    assert token.status_code == 201
    value = token.json()["token"]
    deploy = site.client()
    deploy.headers["Authorization"] = f"Bearer {value}"
    assert deploy.post("/api/v1/checks/api-eu/pause").status_code == 200
    assert value not in admin.get("/api/v1/tokens").text
    assert admin.delete("/api/v1/tokens/deploy").status_code == 204
    assert deploy.get("/api/v1/checks").status_code == 401
    assert admin.delete("/api/v1/tokens/deploy").status_code == 404

    assert admin.delete("/api/v1/users/dan").status_code == 204
    assert admin.delete("/api/v1/users/dan").status_code == 404
    # The last admin cannot be removed over the API.
    assert admin.delete("/api/v1/users/admin").status_code == 409


def test_reports_come_from_the_rollups(site: Site) -> None:
    from app.pipeline.check_cache import CheckCache
    from app.pipeline.ingest import store_results
    from tests.support.results import run_result

    with sessions(site.settings.database_url).begin() as session:
        store_results(
            session,
            [run_result(check_id="api-eu", location="eu-west-1", status=s)
             for s in ("passed", "failed")],
            site.settings,
            CheckCache(),
        )  # fmt: skip
    client = site.with_token("viewer")
    document = client.get("/api/v1/reports?since=24h").json()
    (line,) = [line for line in document["lines"] if line["key"] == "api-eu"]
    assert line["runs"] == 2 and line["uptime_pct"] == 50.0
    week = client.get("/api/v1/reports").json()  # 7 days by default
    assert [line["runs"] for line in week["lines"] if line["key"] == "api-eu"] == [2]
    assert client.get("/api/v1/runs?since=30d").status_code == 200
    by_location = client.get("/api/v1/reports?since=24h&by=location").json()
    assert [line["key"] for line in by_location["lines"]] == ["eu-west-1"]
    assert client.get("/api/v1/reports?by=region").status_code == 400
    assert client.get("/api/v1/reports?since=1e9d").json()["error"].startswith("since: ")

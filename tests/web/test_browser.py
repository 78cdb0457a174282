"""The dashboard in a real browser: headless Chromium (driven by pyppeteer) against the
web product on uvicorn on 127.0.0.1, over a real database. Signs in with the keyboard,
reads the checks list, sees it update without a reload, opens a check and sees its
chart drawn with data, opens a browser run and sees its screenshot, signs out.

Screenshots of each page are saved in the test's folder, and also under
$SYNMON_TEST_ARTIFACTS/web when that is set (for the README and for CI to keep).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyppeteer
import pytest

from app.execution.browser.chromium import launch
from app.pipeline.check_cache import CheckCache
from app.pipeline.ingest import store_results
from app.storage.db import sessions
from app.web.app import create_app
from app.web.server import WebServer, serve
from tests.support.results import run_result, stored_run
from tests.web.support import PASSWORD, make_site, sync_checks

pytestmark = [pytest.mark.processes, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
BROWSER_RUN = uuid.UUID(int=42)


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A PNG of one colour, written by hand (no imaging library in the dependencies)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def served(postgres_url: str, tmp_path: Path) -> Iterator[tuple[WebServer, Any]]:
    site = make_site(postgres_url, SYNMON_DATA_DIR=str(tmp_path / "data"))
    settings = site.settings
    sync_checks(
        settings,
        [
            {"id": "shop-api", "name": "Shop API", "type": "http", "tags": ["shop"],
             "request": {"url": "https://api.example"}, "retry": {"strategy": "none"}},
            {"id": "shop-login", "name": "Shop login", "type": "browser",
             "browser": {"steps": [{"goto": "https://shop.example/"}]}},
        ],
    )  # fmt: skip
    now = datetime.now(UTC)
    with sessions(postgres_url).begin() as session:
        store_results(
            session,
            [
                run_result(
                    check_id="shop-api",
                    location=location,
                    status="passed",
                    duration_ms=100.0 + 10 * n + (50 if location == "us-east-1" else 0),
                    scheduled_at=now - timedelta(minutes=5 * n + 1),
                    started_at=now - timedelta(minutes=5 * n + 1),
                )
                for n in range(12)
                for location in settings.locations
            ],
            settings,
            CheckCache(),
        )
    key = f"shop-login/{BROWSER_RUN}/00-failure.png"
    artifact = tmp_path / "data" / "artifacts" / key
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(png(120, 80, (200, 30, 30)))
    with sessions(postgres_url).begin() as session:
        session.add(
            stored_run(
                check_id="shop-login",
                kind="browser",
                run_id=BROWSER_RUN,
                root_run_id=BROWSER_RUN,
                status="failed",
                error="step 1 (goto): net::ERR_NAME_NOT_RESOLVED",
                assertions=[{"step": 1, "action": "goto", "passed": False, "duration_ms": 12.5}],
                artifacts=[
                    {"name": "failure", "key": key, "url": f"file://{artifact}",
                     "content_type": "image/png", "bytes": artifact.stat().st_size}
                ],
            )
        )  # fmt: skip
    server = serve(create_app(settings), "127.0.0.1", 0)
    try:
        yield server, settings
    finally:
        server.shutdown()


def keep(page_png: Path) -> None:
    folder = os.environ.get("SYNMON_TEST_ARTIFACTS")
    if folder:
        target = Path(folder) / "web"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(page_png, target / page_png.name)


async def js(page: Any, expression: str) -> Any:
    """``expression``'s value in the page (an expression, never taken for a function)."""
    return await page.evaluate(expression, force_expr=True)


async def wait_for(page: Any, expression: str, timeout_ms: int = 15000) -> None:
    await page.waitForFunction(expression, {"timeout": timeout_ms})


async def session_in_browser(base: str, settings: Any, shots: Path) -> dict[str, Any]:
    chromium = launch(CHROMIUM, None)
    seen: dict[str, Any] = {}
    try:
        browser = await pyppeteer.connect(browserWSEndpoint=chromium.endpoint)
        page = await browser.newPage()
        await page.setViewport({"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        async def shot(name: str) -> None:
            path = shots / f"{name}.png"
            await page.screenshot({"path": str(path), "fullPage": True})
            keep(path)

        # Signed out, the dashboard sends the browser to the sign-in page.
        await page.goto(base + "/checks/shop-api", {"waitUntil": "load"})
        seen["login_url"] = page.url
        await shot("sign-in")
        # With the keyboard only: the name field has the focus, Tab, Enter.
        seen["focused"] = await js(page, "document.activeElement.id")
        await page.keyboard.type("viewer")
        await page.keyboard.press("Tab")
        await page.keyboard.type(PASSWORD)
        await asyncio.gather(page.waitForNavigation(), page.keyboard.press("Enter"))
        seen["after_login"] = page.url  # back where it was going

        # The check: its chart drawn with the runs of both locations.
        await wait_for(page, "document.querySelector('#chart canvas') !== null")
        await wait_for(page, "document.querySelector('#chart').dataset.points !== undefined")
        seen["points"] = await js(page, "Number(document.querySelector('#chart').dataset.points)")
        seen["chart_status"] = await js(page, "document.querySelector('#chart-status').textContent")
        seen["legend"] = await js(
            page,
            "Array.from(document.querySelectorAll('.u-legend .u-series th')).map(e => e.textContent)",
        )
        seen["bars"] = await js(page, "document.querySelectorAll('.bars .bar').length")
        await shot("check")

        # The checks list, and a new run appearing without a reload.
        await page.goto(base + "/", {"waitUntil": "load"})
        seen["rows"] = await js(
            page,
            "Array.from(document.querySelectorAll('table.checks tbody tr')).map(r => r.dataset.check)",
        )
        seen["api_state_before"] = await js(
            page,
            "document.querySelector('tr[data-check=\"shop-api\"] td:nth-child(3)').textContent.trim()",
        )
        await js(page, "window.notReloaded = true")
        await shot("checks")
        with sessions(settings.database_url).begin() as session:
            store_results(
                session,
                [
                    run_result(
                        check_id="shop-api",
                        location=location,
                        status="failed",
                        error="connection refused",
                    )
                    for location in settings.locations
                ],
                settings,
                CheckCache(),
            )
        await wait_for(
            page,
            "document.querySelector('tr[data-check=\"shop-api\"] td:nth-child(3)')"
            ".textContent.includes('failing')",
            25000,
        )
        seen["still_same_page"] = await js(page, "window.notReloaded === true")
        await shot("checks-live")

        # Search through the filter form.
        await page.type("#q", "login")
        await asyncio.gather(page.waitForNavigation(), page.keyboard.press("Enter"))
        seen["searched"] = await js(
            page,
            "Array.from(document.querySelectorAll('table.checks tbody tr')).map(r => r.dataset.check)",
        )

        # A browser run: its step and its screenshot, loaded.
        await page.goto(f"{base}/runs/{BROWSER_RUN}", {"waitUntil": "load"})
        await wait_for(page, "document.querySelector('figure img').complete")
        seen["screenshot_width"] = await js(
            page, "document.querySelector('figure img').naturalWidth"
        )
        seen["run_text"] = await js(page, "document.querySelector('main').innerText")
        await shot("run")

        # Sign out: back to the sign-in page, and the dashboard is closed again.
        await asyncio.gather(page.waitForNavigation(), page.click("header form button"))
        seen["after_logout"] = page.url
        await page.goto(base + "/", {"waitUntil": "load"})
        seen["after_logout_home"] = page.url
        seen["errors"] = errors
        await browser.disconnect()
    finally:
        chromium.kill()
    return seen


def test_sign_in_dashboard_check_run_and_sign_out_in_chromium(
    served: tuple[WebServer, Any], tmp_path: Path
) -> None:
    server, settings = served
    shots = tmp_path / "screenshots"
    shots.mkdir()
    seen = asyncio.run(session_in_browser(server.url, settings, shots))
    base = server.url
    assert seen["login_url"] == f"{base}/login?next=%2Fchecks%2Fshop-api"
    assert seen["focused"] == "name"
    assert seen["after_login"] == f"{base}/checks/shop-api"
    assert seen["points"] == 24, seen  # 12 runs in each of two locations
    assert "24 runs from eu-west-1, us-east-1" in seen["chart_status"]
    assert any("eu-west-1" in name for name in seen["legend"]), seen["legend"]
    assert seen["bars"] == 90
    assert seen["rows"] == ["shop-api", "shop-login"]
    assert "passing" in seen["api_state_before"]
    assert seen["still_same_page"] is True
    assert seen["searched"] == ["shop-login"]
    assert seen["screenshot_width"] == 120
    assert "net::ERR_NAME_NOT_RESOLVED" in seen["run_text"] and "FAIL" in seen["run_text"]
    assert seen["after_logout"] == f"{base}/login"
    assert seen["after_logout_home"].startswith(f"{base}/login")
    assert seen["errors"] == []
    for name in ("sign-in", "check", "checks", "checks-live", "run"):
        assert (shots / f"{name}.png").stat().st_size > 1000

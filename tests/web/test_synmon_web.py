"""``synmon web`` as an operator runs it: uvicorn with SYNMON_WEB_WORKERS processes on
SYNMON_WEB_ADDRESS:SYNMON_WEB_PORT, signed in with a token made by ``synmon tokens``,
stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from app.storage.db import migrate
from tests.support.processes import ROOT, free_port, kill_group, wait_until

pytestmark = [pytest.mark.processes]


def test_synmon_web_serves_with_its_workers_and_stops_on_sigterm(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'synmon.sqlite'}"
    migrate(database)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNMON_")}
    env.update(
        SYNMON_ENV="test",
        SYNMON_DATABASE_URL=database,
        SYNMON_DATA_DIR=str(tmp_path / "data"),
        SYNMON_WEB_ADDRESS="127.0.0.1",
        SYNMON_WEB_PORT=str(port),
        SYNMON_WEB_WORKERS="2",
        SYNMON_METRICS_TOKEN="scrape-me",
    )
    cli = [sys.executable, "-m", "app.cli"]
    made = subprocess.run(
        [*cli, "tokens", "create", "--name", "ci", "--role", "viewer"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    token = made.stdout.strip()
    with (tmp_path / "web.log").open("wb") as log:
        web = subprocess.Popen(
            [*cli, "web"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"

            def healthy() -> bool:
                try:
                    return requests.get(base + "/healthz", timeout=5).json() == {"ok": True}
                except requests.RequestException:
                    return False

            wait_until(healthy, 60, 0.3, "synmon web answers")
            output = (tmp_path / "web.log").read_text()
            # No user yet: said when it starts, and the dashboard says it too.
            assert "synmon users add NAME --role admin" in output
            assert f"web product on http://127.0.0.1:{port}/" in output
            assert requests.get(base + "/", timeout=10).status_code == 503
            answer = requests.get(
                base + "/api/v1/checks", headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            assert answer.status_code == 200 and answer.json() == {
                "checks": [],
                "next_cursor": None,
            }
            assert requests.get(base + "/api/v1/checks", timeout=10).status_code == 401
            assert requests.get(base + "/metrics", timeout=10).status_code == 401
            scraped = requests.get(
                base + "/metrics", headers={"Authorization": "Bearer scrape-me"}, timeout=10
            )
            assert scraped.status_code == 200 and "# TYPE" in scraped.text
            # A supervisor and its two workers.
            workers = wait_until(
                lambda: len(psutil.Process(web.pid).children(recursive=True)) >= 2,
                30,
                0.3,
                "two uvicorn workers",
            )
            assert workers
            web.send_signal(signal.SIGTERM)
            assert web.wait(timeout=30) == 0
        finally:
            kill_group(web)

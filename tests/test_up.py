"""``synmon up`` from a clone, as the README says: results of the example checks within a minute."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.support.processes import ROOT, free_port, kill_group, wait_until

pytestmark = pytest.mark.slow


def test_synmon_up_runs_the_example_checks_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNMON_")}
    env.update(
        SYNMON_DATA_DIR=str(tmp_path / "data"), SYNMON_WEB_PORT=str(port), PYTHONUNBUFFERED="1"
    )
    log = (tmp_path / "up.log").open("wb")
    # `make up` runs exactly this, from the clone.
    up = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "up", "examples/checks"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: "synmon is up." in (tmp_path / "up.log").read_text(), 60, 0.5, "the banner"
        )
        banner = (tmp_path / "up.log").read_text()
        assert f"status page   http://127.0.0.1:{port}/" in banner

        def passed_runs() -> list[dict[str, object]]:
            import urllib.request

            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs?since=5m") as response:
                runs = json.loads(response.read())
            return [
                r for r in runs if r["check_id"] == "demo-api-health" and r["status"] == "passed"
            ]

        started = time.monotonic()
        runs = wait_until(passed_runs, 60, 1, "a passed run of the example check")
        assert time.monotonic() - started < 60 and runs
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 7  # http and browser workers (+ pools), beat, ingest, Flower
        flower_url = re.search(r"Flower +(http://\S+)", banner).group(1)  # type: ignore[union-attr]
        login = re.search(r"login (\S+):(\S+)", banner).groups()  # type: ignore[union-attr]

        def flower_workers() -> dict[str, object]:
            try:
                return dict(
                    requests.get(
                        flower_url + "api/workers?refresh=1", auth=login, timeout=10
                    ).json()
                )
            except (requests.RequestException, ValueError):
                return {}

        workers = wait_until(lambda: len(flower_workers()) >= 2, 60, 1, "Flower lists the workers")
        assert workers and requests.get(flower_url + "api/workers", timeout=10).status_code == 401
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=90) == 0
        assert "stopped." in (tmp_path / "up.log").read_text()
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    finally:
        kill_group(up)
        log.close()

"""The browser worker as a real Celery worker: two checks at once on its one Chromium,
Chromium killed mid-run, the process that
owns Chromium (the worker itself, on the threads pool) killed with its Chromium, and
shutdown, all leaving no Chromium behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from app.api import trigger, wait_for_runs
from app.execution.browser.chromium import chromium_processes
from tests.support.pages import PageServer
from tests.support.pipeline import Pipeline, running_pipeline
from tests.support.processes import wait_until
from tests.support.servers import serving

pytestmark = [pytest.mark.slow, pytest.mark.processes]


@pytest.fixture(scope="module")
def site() -> Iterator[PageServer]:
    with serving(PageServer()) as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def pipeline(site: PageServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    folder = tmp_path_factory.mktemp("browser-worker")
    # A killed worker hands nothing back: its run comes back after the queue's visibility
    # timeout, made from the longest check it may run (here 60 s, plus the margin).
    env = {"SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{site.port}", "SYNMON_BROWSER_MAX_TIMEOUT": "60"}
    with running_pipeline(folder, env, [("eu-west-1", "browser", 2)], beat=False) as running:
        running.sync(
            {
                "checks": [
                    {
                        "id": "stuck",
                        "type": "browser",
                        "frequency": "24h",
                        "locations": ["eu-west-1"],
                        "browser": {
                            "steps": [
                                {"goto": site.url("/login")},
                                {"wait_for": {"selector": "#never", "timeout": "25s"}},
                            ]
                        },
                    },
                    together(site, "a"),
                    together(site, "b"),
                    {
                        "id": "quick",
                        "type": "browser",
                        "frequency": "24h",
                        "locations": ["eu-west-1"],
                        "browser": {
                            "steps": [
                                {"goto": site.url("/trivial")},
                                {"click": "#b"},
                                {"assert_text": {"selector": "#b", "equals": "clicked"}},
                            ]
                        },
                    },
                ]
            }
        )
        yield running


def together(site: PageServer, tag: str) -> dict[str, Any]:
    """A check that takes about four seconds, most of them waiting for its page."""
    return {
        "id": f"together-{tag}",
        "type": "browser",
        "frequency": "24h",
        "locations": ["eu-west-1"],
        "browser": {
            "steps": [
                {"goto": site.url(f"/noisy?tag={tag}&blocked=9&delay=4000")},
                {"wait_for": {"selector": "#done", "timeout": "15s"}},
            ]
        },
    }


def browser_worker(pipeline: Pipeline) -> subprocess.Popen[bytes]:
    """The browser worker: the last one started (a test replaces the one it kills)."""
    return [p for name, p in pipeline.synmon.processes if name.startswith("worker")][-1]


def worker_chromium(pipeline: Pipeline) -> list[psutil.Process]:
    worker = browser_worker(pipeline)
    try:
        tree = psutil.Process(worker.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [
        p for p in tree if "chromium" in p.name().lower() and p.status() != psutil.STATUS_ZOMBIE
    ]


def test_two_checks_run_at_once_on_the_workers_one_chromium(pipeline: Pipeline) -> None:
    run_ids = [
        *trigger("together-a", settings=pipeline.settings),
        *trigger("together-b", settings=pipeline.settings),
    ]
    rows = wait_for_runs(run_ids, 90, pipeline.settings)
    assert [r.status for r in rows] == ["passed", "passed"], [r.error for r in rows]
    spans = [(r.started_at, r.started_at + timedelta(milliseconds=r.duration_ms)) for r in rows]
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans
    worker = psutil.Process(browser_worker(pipeline).pid)
    browsers = [p for p in worker.children() if "chromium" in p.name().lower()]
    assert len(browsers) == 1, browsers


def test_chromium_killed_mid_run(pipeline: Pipeline) -> None:
    assert (
        wait_for_runs(trigger("quick", settings=pipeline.settings), 90, pipeline.settings)[0].status
        == "passed"
    )
    (run_id,) = trigger("stuck", settings=pipeline.settings)
    time.sleep(3)  # the run is now waiting for #never
    victims = wait_until(lambda: worker_chromium(pipeline), 20, message="Chromium running")
    for process in victims:
        process.kill()
    (row,) = wait_for_runs([run_id], 60, pipeline.settings)
    assert row.status == "failed" and row.error_kind == "browser"
    assert "Chromium crashed during step 2" in (row.error or "")
    assert not [p for p in victims if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    again = wait_for_runs(trigger("quick", settings=pipeline.settings), 90, pipeline.settings)
    assert [r.status for r in again] == ["passed"]


def test_a_killed_owner_process_takes_its_chromium_and_the_run_comes_back(
    pipeline: Pipeline,
) -> None:
    (run_id,) = trigger("stuck", settings=pipeline.settings)
    time.sleep(3)
    victims = wait_until(lambda: worker_chromium(pipeline), 20, message="Chromium running")
    owner = browser_worker(pipeline)  # the threads pool: Chromium's owner is the worker
    assert not [p for p in psutil.Process(owner.pid).children() if "chromium" not in p.name()]
    os.kill(owner.pid, signal.SIGKILL)
    # PR_SET_PDEATHSIG: Chromium dies with the process that owned it.
    wait_until(
        lambda: not [p for p in victims if p.is_running() and p.status() != psutil.STATUS_ZOMBIE],
        20,
        message="Chromium gone with its owner",
    )
    # The lost job is delivered again, to the worker that replaces the killed one, and
    # ends as one stored result (the wait step fails).
    pipeline.synmon.start(
        "worker-eu-west-1-browser-2", "worker", "-l", "eu-west-1", "-k", "browser", "-c", "2"
    )
    rows = wait_for_runs([run_id], 150, pipeline.settings)
    assert len(rows) == 1 and rows[0].status == "failed", [(r.status, r.error) for r in rows]
    assert rows[0].deliveries >= 2


def test_worker_shutdown_leaves_no_chromium(pipeline: Pipeline, tmp_path: Path) -> None:
    assert (
        wait_for_runs(trigger("quick", settings=pipeline.settings), 90, pipeline.settings)[0].status
        == "passed"
    )
    assert worker_chromium(pipeline)
    before_ours = {p.pid for p in worker_chromium(pipeline)}
    worker = browser_worker(pipeline)
    assert pipeline.synmon.stop(worker, signal.SIGTERM, timeout=60) == 0
    time.sleep(1)
    left = [
        p
        for p in chromium_processes()
        if p.pid in before_ours and p.status() != psutil.STATUS_ZOMBIE
    ]
    assert left == []

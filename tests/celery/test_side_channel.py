"""Flower and remote control over the Redis side channel while tasks flow through SQS.

This test relies on Celery internals (app/celery/side_channel.py); it is the one that fails the day
a Celery upgrade breaks the side channel.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.support.faults import assert_exactly_once, send_runs
from tests.support.pipeline import Pipeline, running_pipeline
from tests.support.processes import ROOT, free_port, run_in_checkout, wait_until
from tests.support.servers import TargetServer, http_target

pytestmark = [pytest.mark.slow, pytest.mark.processes]
AUTH = ("ops", "flower-secret-9")


@pytest.fixture(scope="module", params=["redis", "filesystem"])
def side_channel_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The machine's Redis (an empty database, emptied again afterwards), or a folder."""
    if request.param == "filesystem":
        yield f"filesystem://{tmp_path_factory.mktemp('events')}"
        return
    client = redis.Redis(host="127.0.0.1", port=6379)
    for db in range(15, 0, -1):
        candidate = redis.Redis(host="127.0.0.1", port=6379, db=db)
        if candidate.dbsize() == 0:
            break
    else:
        pytest.fail("no empty Redis database to use")
    client.close()
    try:
        yield f"redis://127.0.0.1:6379/{db}"
    finally:
        candidate.flushdb()
        candidate.close()


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


@pytest.fixture(scope="module")
def pipeline(
    side_channel_url: str, target: TargetServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    env = {
        "SYNMON_EVENTS_URL": side_channel_url,
        "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{target.port}",
        "SYNMON_FLOWER_PORT": str(free_port()),
        "SYNMON_FLOWER_BASIC_AUTH": ":".join(AUTH),
    }
    with running_pipeline(tmp_path_factory.mktemp("side-channel"), env, beat=False) as running:
        running.sync(
            {
                "checks": [
                    {
                        "id": "quick",
                        "type": "http",
                        "frequency": "24h",
                        "locations": ["eu-west-1"],
                        "request": {"url": target.url("/ok")},
                    }
                ]
            }
        )
        running.synmon.start("flower", "flower")
        yield running


def flower(pipeline: Pipeline, path: str, auth: tuple[str, str] | None = AUTH) -> requests.Response:
    port = pipeline.env["SYNMON_FLOWER_PORT"]
    return requests.get(f"http://127.0.0.1:{port}{path}", auth=auth, timeout=10)


def flower_up(pipeline: Pipeline) -> bool:
    try:
        return flower(pipeline, "/healthcheck").status_code == 200
    except requests.ConnectionError:
        return False


def events_total(pipeline: Pipeline) -> float:
    text = flower(pipeline, "/metrics").text
    return sum(
        float(v) for v in re.findall(r"^flower_events_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
    )


def celery_cli(side_channel_url: str) -> list[str]:
    """``celery -b redis://...`` as an operator would type it; a folder needs its options."""
    if side_channel_url.startswith("redis"):
        return [sys.executable, "-m", "celery", "-b", side_channel_url]
    return [sys.executable, "-m", "celery", "-A", "app.celery.flower"]


def test_inspect_ping_answers_over_the_side_channel(
    pipeline: Pipeline, side_channel_url: str
) -> None:
    def inspect(command: str) -> str:
        argv = [*celery_cli(side_channel_url), "inspect", command, "--timeout", "3"]
        return run_in_checkout(argv, pipeline.synmon.env, timeout=60).stdout

    def ping() -> str:
        output = inspect("ping")
        return output if "pong" in output else ""

    output = wait_until(ping, 60, 1, "a pong")
    assert "http-eu-west-1@" in output
    stats = inspect("active_queues")
    assert "synmon-test-run-eu-west-1-http" in stats


def test_flower_lists_workers_and_tasks_and_counts_events(pipeline: Pipeline) -> None:
    wait_until(lambda: flower_up(pipeline), 60, 0.5, "Flower up")
    assert flower(pipeline, "/api/workers", auth=None).status_code == 401
    before = events_total(pipeline)
    run_ids = send_runs(pipeline.settings, pipeline.definition("quick"), 10)
    assert_exactly_once(pipeline, run_ids)

    def tasks_seen() -> dict[str, dict[str, object]]:
        tasks = flower(pipeline, "/api/tasks").json()
        return tasks if {str(r) for r in run_ids} <= set(tasks) else {}

    tasks = wait_until(tasks_seen, 60, 1, "Flower knows the tasks")
    for run_id in run_ids:
        task = tasks[str(run_id)]
        assert task["name"] == "synmon.run_http" and task["state"] == "SUCCESS"
    workers = wait_until(
        lambda: flower(pipeline, "/api/workers?refresh=1").json(), 60, 1, "workers"
    )
    assert any(name.startswith("http-eu-west-1@") for name in workers)
    assert wait_until(
        lambda: events_total(pipeline) > before + 20, 30, 1, "flower_events_total rising"
    )
    # The queue on SQS stays free of Celery's pidbox and event queues.
    from app.pipeline.sqs import client

    names = client(pipeline.settings).list_queues().get("QueueUrls", [])
    assert not [n for n in names if "pidbox" in n or "celeryev" in n], names


def test_flower_refuses_to_start_without_auth(pipeline: Pipeline) -> None:
    result = pipeline.synmon.command("flower", env={"SYNMON_FLOWER_BASIC_AUTH": ""}, check=False)
    assert result.returncode != 0 and "SYNMON_FLOWER_BASIC_AUTH" in result.stderr


def test_flower_listens_on_loopback_only(pipeline: Pipeline) -> None:
    import psutil

    wait_until(lambda: flower_up(pipeline), 60, 0.5, "Flower up")
    port = int(pipeline.env["SYNMON_FLOWER_PORT"])
    (_, flower_process), *_ = [p for p in pipeline.synmon.processes if p[0] == "flower"]
    tree = [
        psutil.Process(flower_process.pid),
        *psutil.Process(flower_process.pid).children(recursive=True),
    ]
    listening = {
        c.laddr.ip
        for p in tree
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }
    assert listening == {"127.0.0.1"}


def test_flowers_login_is_on_no_command_line(pipeline: Pipeline) -> None:
    import psutil

    wait_until(lambda: flower_up(pipeline), 60, 0.5, "Flower up")
    assert flower(pipeline, "/api/workers", auth=None).status_code == 401
    (_, flower_process), *_ = [p for p in pipeline.synmon.processes if p[0] == "flower"]
    root = psutil.Process(flower_process.pid)
    for process in [root, *root.children(recursive=True)]:
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert AUTH[1].encode() not in cmdline, process.cmdline()


# A -b URL is a Redis URL: the folder side channel is reached through its own app.
@pytest.mark.parametrize("side_channel_url", ["redis"], indirect=True)
def test_celery_with_synmons_app_and_a_redis_url_speaks_redis(
    pipeline: Pipeline, side_channel_url: str
) -> None:
    """``celery -A app -b redis://...``: synmon's SQS transport serves sqs:// URLs only, so
    Celery's own commands reach the side channel with synmon's app loaded."""
    assert side_channel_url.startswith("redis://")
    base = [sys.executable, "-m", "celery", "-A", "app", "-b", side_channel_url]

    def ping() -> str:
        argv = [*base, "inspect", "ping", "--timeout", "3"]
        output = run_in_checkout(argv, pipeline.synmon.env, timeout=60).stdout
        return output if "pong" in output else ""

    assert "http-eu-west-1@" in wait_until(ping, 60, 1, "a pong through celery -A app")
    port = free_port()
    flower = subprocess.Popen(
        [*base, "flower", "--address=127.0.0.1", f"--port={port}"],
        cwd=ROOT,
        env={**pipeline.synmon.env, "FLOWER_UNAUTHENTICATED_API": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def workers() -> Any:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/api/workers?refresh=1", timeout=5)
            except requests.RequestException:
                return None
            return answer.json() if answer.status_code == 200 else None

        assert any(
            name.startswith("http-eu-west-1@")
            for name in wait_until(workers, 60, 1, "Flower through celery -A app")
        )
    finally:
        flower.terminate()
        flower.wait(timeout=30)

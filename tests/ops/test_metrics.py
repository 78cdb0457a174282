"""``/metrics`` scraped while the pipeline runs: every series, its labels and values; and
no secret given as a placeholder shows up in metrics, results or logs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.api import trigger, wait_for_runs
from app.pipeline.queues import queue_name
from app.pipeline.sqs import client, queue_urls
from tests.support.pipeline import Pipeline, http_check, running_pipeline
from tests.support.processes import free_port, wait_until
from tests.support.servers import TargetServer, http_target

pytestmark = [pytest.mark.slow, pytest.mark.processes]
SECRET = "s3cr3t-token-5521"


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


@pytest.fixture(scope="module")
def pipeline(target: TargetServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    folder = tmp_path_factory.mktemp("metrics")
    env = {
        "SYNMON_LOCATIONS": "eu-west-1,us-east-1",
        "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{target.port}",
        "SYNMON_METRICS_DIR": str(folder / "metrics"),
        "SYNMON_WEB_PORT": str(free_port()),
        "SYNMON_VAR_TOKEN": SECRET,
    }
    workers = [("eu-west-1", "http", 2), ("us-east-1", "http", 1)]
    with running_pipeline(folder, env, workers) as running:
        running.synmon.start("web", "web")
        yield running


def scrape(pipeline: Pipeline) -> str:
    response = requests.get(
        f"http://127.0.0.1:{pipeline.env['SYNMON_WEB_PORT']}/metrics", timeout=30
    )
    response.raise_for_status()
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}``; labels not given may take any value (summed)."""
    total, found = 0.0, False
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:]+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
            found = True
    if not found:
        raise AssertionError(f"no sample {name}{labels}")
    return total


def test_every_series_with_its_labels_and_values(pipeline: Pipeline, target: TargetServer) -> None:
    pipeline.sync(
        {
            "checks": [
                http_check("ok", target.url("/ok")),
                http_check("bad", target.url("/status/500")),
                {
                    "id": "ticking",
                    "type": "http",
                    "frequency": "10s",
                    "locations": ["us-east-1"],
                    "request": {"url": target.url("/echo?token={{TOKEN}}")},
                },
            ]
        }
    )
    runs = [
        *(trigger("ok", settings=pipeline.settings)[0] for _ in range(3)),
        *(trigger("bad", settings=pipeline.settings)[0] for _ in range(2)),
    ]
    wait_for_runs(runs, 60, pipeline.settings)
    wait_until(lambda: pipeline.rows(check_id="ticking"), 40, 1, "a scheduled run")
    dlq = queue_name(pipeline.settings, "run", "eu-west-1", "http", dead_letter=True)
    for body in ("dead one", "dead two"):
        client(pipeline.settings).send_message(
            QueueUrl=queue_urls(pipeline.settings)(dlq), MessageBody=body
        )

    def settled() -> str:
        text = scrape(pipeline)
        ready = value(text, "synmon_runs_total", location="eu-west-1") == 5
        return text if ready else ""

    text = wait_until(settled, 30, 1, "metrics of the five runs")
    assert value(text, "synmon_runs_total", status="passed", location="eu-west-1", kind="http") == 3
    assert value(text, "synmon_runs_total", status="failed", location="eu-west-1", kind="http") == 2
    assert value(text, "synmon_runs_total", location="us-east-1", kind="http") >= 1
    assert value(text, "synmon_run_duration_seconds_count", location="eu-west-1", kind="http") == 5
    assert (
        value(
            text, "synmon_run_duration_seconds_bucket", location="eu-west-1", kind="http", le="+Inf"
        )
        == 5
    )
    stored = value(text, "synmon_runs_total")
    assert value(text, "synmon_ingest_lag_seconds_count") == stored
    assert value(text, "synmon_dispatched_runs_total", location="us-east-1", kind="http") >= 1
    assert value(text, "synmon_dispatch_lag_seconds_count") >= 1
    assert value(text, "synmon_queue_messages", queue=dlq, dead_letter="true", state="visible") == 2
    assert (
        value(
            text,
            "synmon_queue_messages",
            queue=queue_name(pipeline.settings, "results"),
            dead_letter="false",
            state="in_flight",
        )
        >= 0
    )
    assert (
        value(text, "synmon_queue_oldest_message_age_seconds", queue=dlq, dead_letter="true") >= 0
    )
    assert value(text, "synmon_checks", state="passing") == 2  # ok, ticking
    assert value(text, "synmon_checks", state="failing") == 1
    # The secret reached the target and nothing synmon keeps or shows.
    assert any(SECRET in hit["path"] for hit in target.hits)
    assert SECRET not in text
    stored_rows = json.dumps([r.__dict__ for r in pipeline.rows()], default=str)
    assert SECRET not in stored_rows and "[REDACTED]" in stored_rows
    for name, _ in pipeline.synmon.processes:
        assert SECRET not in pipeline.synmon.log(name), name


def test_flower_metrics_beside_synmon_metrics_do_not_collide(pipeline: Pipeline) -> None:
    text = scrape(pipeline)
    assert not [line for line in text.splitlines() if line.startswith("flower_")]


def test_one_json_line_per_run(pipeline: Pipeline) -> None:
    lines = [
        json.loads(line)
        for line in pipeline.synmon.log("worker-eu-west-1-http").splitlines()
        if line.startswith("{") and '"synmon.run"' in line
    ]
    runs = [line for line in lines if line.get("run_id")]
    assert len(runs) >= 5
    for line in runs:
        assert {"run_id", "check_id", "location", "status", "duration_ms", "attempt"} <= set(line)
    assert len({line["run_id"] for line in runs}) == len(runs)


def test_metrics_dir_is_shared(pipeline: Pipeline) -> None:
    files = list(Path(pipeline.env["SYNMON_METRICS_DIR"]).glob("*.db"))
    assert files, "no process wrote its metrics to the shared folder"

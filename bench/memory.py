"""Memory: peak resident set of an idle and a busy HTTP worker (main process and pool),
and of a browser worker with its Chromium, next to a bare Celery worker with a no-op
task and the same pool, and a bare Chromium with one page."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pyppeteer

from app.execution.runs import RunRequest
from app.ops.health import READY
from app.pipeline.dispatch import run_request_message
from app.pipeline.sqs import BatchSender, client
from bench.browser import launch_options, wait_for_bench_chromium_to_exit
from bench.common import Figure, Size, WrongResult
from bench.http_executor import target
from config.settings import load_settings
from tests.support.pages import PageServer
from tests.support.pipeline import http_check, running_pipeline
from tests.support.plain_worker import start_plain_worker
from tests.support.processes import kill_group, moto_server, wait_until
from tests.support.servers import serving

SIZES = {"tiny": 20, "full": 300}
MIB = 2**20


def tree_rss(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total / MIB


class Peak:
    """Samples a process tree's RSS in the background; keeps the highest."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self.stop.wait(0.05)

    def __enter__(self) -> Peak:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def consuming(folder: Path) -> bool:
    """A worker's health file under ``folder`` says it consumes (its pool has started)."""
    for path in (folder / "health").glob("*.json"):
        with contextlib.suppress(ValueError):  # caught mid-write: the next poll reads it
            if json.loads(path.read_text()).get("state") == READY:
                return True
    return False


def worker_pid(pipeline: object, prefix: str) -> int:
    for name, process in pipeline.synmon.processes:  # type: ignore[attr-defined]
        if name.startswith(prefix):
            return int(process.pid)
    raise LookupError(prefix)


def http_worker(count: int) -> tuple[float, float]:
    with target() as url:
        port = url.split(":")[2].split("/", maxsplit=1)[0]
        folder = Path(tempfile.mkdtemp(prefix="synmon-bench-"))
        with running_pipeline(
            folder,
            {"SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{port}", "SYNMON_LOG_LEVEL": "WARNING"},
            [("eu-west-1", "http", 4)],
            beat=False,
        ) as pipeline:
            pid = worker_pid(pipeline, "worker")
            # Its health file, not its pool processes: a threads pool (the default) has none.
            wait_until(lambda: consuming(folder), 60, 0.2, "the HTTP worker consuming")
            time.sleep(3)
            idle = tree_rss(pid)
            pipeline.sync({"checks": [http_check("m", url)]})
            definition = pipeline.definition("m")
            requests = [
                RunRequest(uuid.uuid4(), definition, "eu-west-1", datetime.now(UTC))
                for _ in range(count)
            ]
            with Peak(pid) as peak:
                BatchSender(pipeline.settings).send(
                    [run_request_message(r, pipeline.settings) for r in requests]
                )
                wait_until(
                    lambda: len(pipeline.rows(check_id="m")) >= count, 170, 0.2, "busy worker done"
                )
            if len(pipeline.rows(check_id="m")) != count:
                raise WrongResult("the busy worker's runs were not all stored once")
            return idle, peak.peak


def bare_celery_worker() -> float:
    with moto_server() as moto:
        settings = load_settings({"SYNMON_SQS_ENDPOINT": moto.endpoint})
        url = client(settings).create_queue(QueueName="trivial")["QueueUrl"]
        worker = start_plain_worker(moto.port, "trivial", url, "-c", "4")
        try:
            wait_until(lambda: len(psutil.Process(worker.pid).children()) == 4, 60)
            time.sleep(3)
            return tree_rss(worker.pid)
        finally:
            kill_group(worker)


def browser_worker() -> float:
    with serving(PageServer()) as site:
        folder = Path(tempfile.mkdtemp(prefix="synmon-bench-"))
        with running_pipeline(
            folder,
            {"SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{site.port}", "SYNMON_LOG_LEVEL": "WARNING"},
            [("eu-west-1", "browser", 1)],
            beat=False,
        ) as pipeline:
            pid = worker_pid(pipeline, "worker")
            pipeline.sync(
                {
                    "checks": [
                        {
                            "id": "b",
                            "type": "browser",
                            "frequency": "24h",
                            "locations": ["eu-west-1"],
                            "browser": {
                                "steps": [{"goto": site.url("/login")}, {"screenshot": "s"}]
                            },
                        }
                    ]
                }
            )
            definition = pipeline.definition("b")
            with Peak(pid) as peak:
                requests = [
                    RunRequest(uuid.uuid4(), definition, "eu-west-1", datetime.now(UTC))
                    for _ in range(5)
                ]
                BatchSender(pipeline.settings).send(
                    [run_request_message(r, pipeline.settings) for r in requests]
                )
                wait_until(
                    lambda: len(pipeline.rows(check_id="b")) >= 5, 120, 0.2, "browser runs stored"
                )
            if any(r.status != "passed" for r in pipeline.rows(check_id="b")):
                raise WrongResult("a browser run failed")
            return peak.peak


def bare_chromium() -> float:
    async def measure() -> float:
        browser = await pyppeteer.launch(**launch_options())
        try:
            with serving(PageServer()) as site:
                page = await browser.newPage()
                await page.goto(site.url("/login"))
                await page.screenshot()
                return tree_rss(browser.process.pid)
        finally:
            await browser.close()

    rss = asyncio.new_event_loop().run_until_complete(measure())
    wait_for_bench_chromium_to_exit()
    return rss


def run(size: Size) -> list[Figure]:
    idle, busy = http_worker(SIZES[size])
    bare = bare_celery_worker()
    browser = browser_worker()
    chromium = bare_chromium()
    notes = ["RSS summed over the process tree (shared pages count in each process)"]
    pool = load_settings({}).http_pool
    figures = [
        Figure(
            "memory",
            f"HTTP worker, -c 4 ({pool}), idle",
            "MiB",
            idle,
            bare,
            "bare Celery worker, no-op task, 4 processes (prefork), idle",
            better="lower",
            notes=notes,
        ),
        Figure(
            "memory",
            f"HTTP worker, -c 4 ({pool}), busy (peak)",
            "MiB",
            busy,
            idle,
            "the same worker idle",
            better="lower",
        ),
        Figure(
            "memory",
            "browser worker + its Chromium (peak)",
            "MiB",
            browser,
            chromium,
            "bare Chromium with one page open",
            better="lower",
            notes=["includes the worker's main process, its pool process and the guard proxy"],
        ),
    ]
    return figures

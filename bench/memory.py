"""Memory: peak resident set of an idle and a busy HTTP worker with its defaults (the
threads pool, SYNMON_HTTP_CONCURRENCY checks in flight; main process and any pool
processes), and of a browser worker with its Chromium, next to a bare Celery worker with
a no-op task and the same pool and concurrency, and a bare Chromium with one page.

Busy means every slot of the HTTP worker holds a check (at the full size): its runs go
to a target that answers after a second, three times as many as it has slots."""

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
from bench import slow_target
from bench.browser import launch_options, wait_for_bench_chromium_to_exit
from bench.common import Figure, Size, WrongResult
from config.settings import load_settings
from tests.support.pages import PageServer
from tests.support.pipeline import http_check, running_pipeline
from tests.support.plain_worker import start_plain_worker
from tests.support.processes import kill_group, moto_server, wait_until
from tests.support.servers import serving

# Runs of the busy HTTP worker, in multiples of its concurrency (at least 20).
SIZES = {"tiny": 0.2, "full": 3.0}
BUSY_DELAY = 1.0  # seconds the target takes to answer a busy worker's check
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


def http_worker(size: float) -> tuple[float, float, int]:
    """(idle, busy peak) MiB of an HTTP worker with its default pool and concurrency, and
    how many runs it had."""
    concurrency = load_settings({}).http_concurrency
    count = max(20, int(size * concurrency))
    with slow_target.running() as url:
        port = url.split(":")[2].split("/", maxsplit=1)[0]
        folder = Path(tempfile.mkdtemp(prefix="synmon-bench-"))
        with running_pipeline(
            folder,
            {"SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{port}", "SYNMON_LOG_LEVEL": "WARNING"},
            [("eu-west-1", "http", concurrency)],
            beat=False,
        ) as pipeline:
            pid = worker_pid(pipeline, "worker")
            # Its health file, not its pool processes: a threads pool (the default) has none.
            wait_until(lambda: consuming(folder), 60, 0.2, "the HTTP worker consuming")
            time.sleep(3)
            idle = tree_rss(pid)
            pipeline.sync({"checks": [http_check("m", f"{url}?delay={BUSY_DELAY:g}")]})
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
            rows = pipeline.rows(check_id="m")
            if len(rows) != count or len({r.run_id for r in rows}) != count:
                raise WrongResult("the busy worker's runs were not all stored once")
            if any(r.status != "passed" for r in rows):
                raise WrongResult("a busy worker's run failed")
            return idle, peak.peak, count


def settled(pid: int, at_least: float = 3.0, timeout: float = 60.0) -> float:
    """A process tree's RSS once it stops growing (a threads pool has no children to wait
    for: its threads start as they are needed)."""
    time.sleep(at_least)
    deadline = time.monotonic() + timeout
    before = tree_rss(pid)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = tree_rss(pid)
        if abs(now - before) <= 0.01 * before:
            return now
        before = now
    return before


def bare_celery_worker() -> float:
    settings = load_settings({})
    pool, concurrency = settings.http_pool, settings.http_concurrency
    with moto_server() as moto:
        settings = load_settings({"SYNMON_SQS_ENDPOINT": moto.endpoint})
        url = client(settings).create_queue(QueueName="trivial")["QueueUrl"]
        worker = start_plain_worker(moto.port, "trivial", url, "-P", pool, "-c", str(concurrency))
        try:
            if pool == "prefork":
                wait_until(lambda: len(psutil.Process(worker.pid).children()) == concurrency, 120)
            return settled(worker.pid)
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
    idle, busy, runs = http_worker(SIZES[size])
    bare = bare_celery_worker()
    browser = browser_worker()
    chromium = bare_chromium()
    notes = ["RSS summed over the process tree (shared pages count in each process)"]
    settings = load_settings({})
    worker = f"{settings.http_pool}, -c {settings.http_concurrency}"
    figures = [
        Figure(
            "memory",
            f"HTTP worker, defaults ({worker}), idle",
            "MiB",
            idle,
            bare,
            f"bare Celery worker, no-op task, {worker}, idle",
            better="lower",
            notes=notes,
        ),
        Figure(
            "memory",
            f"HTTP worker, defaults ({worker}), busy (peak)",
            "MiB",
            busy,
            idle,
            "the same worker idle",
            better="lower",
            notes=[
                f"{runs} runs against a target answering after {BUSY_DELAY:g} s: "
                f"{min(runs, settings.http_concurrency)} in flight at most"
            ],
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

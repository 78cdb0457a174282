"""Capacity of one HTTP worker with its defaults (``synmon worker -l LOC -k http``: the
threads pool, SYNMON_HTTP_CONCURRENCY checks in flight), the figure docs/capacity.md
builds on.

Run requests go through moto's SQS server to the worker, which runs them against a
local target answering after 200 ms (and after 1 s); the results are read back from the
results queue, and every run id sent must come back exactly once. In the same run:

- a bare pool of as many threads doing the same requests (``requests.get``), no queue:
  what the checks alone could reach;
- moto's own ceiling: a plain Celery worker with the same pool, the same delivery and
  transport settings, whose task runs no check and publishes the run id at once
  (bench/echo_celery.py): the same SQS requests per run as synmon's.

synmon's rate is judged against the lower of the two, named in the output. The
worker's peak RSS (worker and children, psutil) is judged against 400 MiB, next to the
plain Celery worker's. moto's log counts the SQS requests each run costs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests

from app.definitions.models import Check
from app.execution.runs import RunRequest
from app.pipeline.dispatch import run_request_message, time_limits
from app.pipeline.queues import queue_name
from app.pipeline.sqs import celery_task_body, client, connection_pool_size
from app.pipeline.wire import run_request_json
from bench import slow_target
from bench.common import Figure, Size, WrongResult
from bench.memory import Peak, tree_rss
from config.settings import Settings, load_settings
from tests.support.processes import (
    BIN,
    ROOT,
    MotoServer,
    Synmon,
    free_port,
    kill_group,
    wait_until,
)

# Runs per figure, by the target's delay in seconds.
SIZES: dict[str, dict[float, int]] = {
    "tiny": {0.2: 60, 1.0: 30},
    "full": {0.2: 1000, 1.0: 500},
}
WARM_UP = 100
ROUNDS = 2  # per route and figure, alternating which goes first
WINDOW_SPARE = 50  # runs queued beyond the worker's slots, so that no slot waits for one
GOAL_RATIO = 0.9
GOAL_RSS_MIB = 400.0
LOCATION = "eu-west-1"
READERS = 4  # threads reading a results queue: more than enough to keep it empty
GRACE = 2.0  # seconds to wait for a doubled result after the last one expected
TUNABLE = ("SYNMON_HTTP_POOL", "SYNMON_HTTP_CONCURRENCY")


@contextmanager
def logged_moto(log: Path) -> Iterator[MotoServer]:
    """moto's server with its request log kept (one line per SQS request)."""
    server = MotoServer(free_port())
    with log.open("wb") as out:
        server.process = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(server.port)],
            stdout=subprocess.DEVNULL,
            stderr=out,
            start_new_session=True,
        )
    try:
        wait_until(server._ready, 30, message=f"moto_server on {server.port}")
        yield server
    finally:
        server.stop()


def requests_logged(log: Path) -> int:
    with log.open("rb") as lines:
        return sum(1 for line in lines if b'"POST / HTTP' in line)


def arrival(body: dict[str, Any]) -> str:
    """A result's deliveries and start (v2 nests them; v1 and the echo worker's do not)."""
    attempt: dict[str, Any] = body["attempt"] if isinstance(body.get("attempt"), dict) else body
    timing: dict[str, Any] = body.get("timing") or body
    return f"deliveries={attempt.get('deliveries')} started={timing.get('started_at')}"


class Results:
    """Reads a results queue from a few threads for the whole benchmark, deleting what
    it reads, and counts the result messages of every run id (a doubled run is two).

    One message received twice (the same SQS MessageId) is the queue's at-least-once
    delivery, which ingest absorbs by run id, not a run done twice: it is counted apart.
    (moto's receive takes no lock, so that concurrent receivers sometimes both get a
    message; SQS itself does so now and then.)"""

    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs, self.url = sqs, url
        self.seen: Counter[str] = Counter()
        self.message_ids: set[str] = set()
        self.body_bytes = 0
        self.redelivered = 0
        self.statuses: Counter[str] = Counter()
        # Each run's deliveries and start, per result: what tells a redelivery apart.
        self.arrivals: dict[str, list[str]] = {}
        self.last_arrival = 0.0
        self.calls = 0  # SQS requests of this reader, to tell them from the worker's
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._read, daemon=True) for _ in range(READERS)]

    def _read(self) -> None:
        while not self.stop.is_set():
            messages = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            calls = 1
            if messages:
                self.sqs.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )
                calls += 1
            arrived = time.perf_counter()
            with self.lock:
                self.calls += calls
                for message in messages:
                    if message["MessageId"] in self.message_ids:
                        self.redelivered += 1
                        continue
                    self.message_ids.add(message["MessageId"])
                    self.body_bytes += len(message["Body"])
                    body = json.loads(message["Body"])
                    run_id = str(body["run_id"])
                    self.seen[run_id] += 1
                    self.arrivals.setdefault(run_id, []).append(arrival(body))
                    self.statuses[str(body["status"])] += 1
                    self.last_arrival = arrived

    def count(self, run_ids: list[str]) -> int:
        with self.lock:
            return sum(1 for r in run_ids if r in self.seen)

    def __enter__(self) -> Results:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)


def exactly_once(name: str, results: Results, sent: list[str], log: str = "") -> str | None:
    """Why not every run id sent came back exactly once, or every run passed; None if they did."""
    with results.lock:
        seen = dict(results.seen)
        statuses = dict(results.statuses)
        arrivals = {r: list(a) for r, a in results.arrivals.items()}
    lost = [r for r in sent if r not in seen]
    doubled = {r: n for r, n in seen.items() if n > 1}
    unknown = set(seen) - set(sent)
    if lost or doubled or unknown:
        first = next(iter(doubled), None)
        complaints = [
            line[:300] for line in log.splitlines() if "WARNING" in line or "ERROR" in line
        ]
        return (
            f"{name}: {len(lost)} of {len(sent)} runs lost, {len(doubled)} doubled, "
            f"{len(unknown)} results for runs never sent"
            + (f"; doubled run {first}: {arrivals[first]}" if first else "")
            + (f"; worker log ({len(complaints)} warnings): {complaints[:3]}" if complaints else "")
        )
    if set(statuses) != {"passed"}:
        return f"{name}: outcomes {statuses}, expected every run to pass"
    return None


@dataclass
class Route:
    """One way for run requests to travel: a run queue, a worker, a results queue."""

    name: str
    sqs: Any
    queue: str
    url: str
    results: Results
    worker_pid: int
    encode: Callable[[RunRequest], str]
    sent: list[str] = field(default_factory=list)
    calls: int = 0  # SendMessageBatch calls of the benchmark itself

    def send(self, runs: list[RunRequest]) -> None:
        bodies = [self.encode(r) for r in runs]
        self.sent.extend(str(r.run_id) for r in runs)
        for start in range(0, len(bodies), 10):
            self.sqs.send_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "MessageBody": body}
                    for i, body in enumerate(bodies[start : start + 10])
                ],
            )
            self.calls += 1


@dataclass
class Measured:
    """Totals over one or more rounds of a route."""

    runs: int
    seconds: float
    peak_mib: float
    cpu_seconds: float  # of the worker's process tree
    sqs_requests: int  # of the worker: moto's log, less the benchmark's own
    moto_cpu_seconds: float  # of moto's server: how busy the bound was
    idle_seconds: float  # of the whole machine, summed over its cores

    @property
    def rate(self) -> float:
        return self.runs / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / self.runs

    @property
    def requests(self) -> float:
        return self.sqs_requests / self.runs

    @property
    def moto_busy(self) -> float:
        """moto's CPU, in cores (its server is one Python process: at most about one)."""
        return self.moto_cpu_seconds / self.seconds

    @property
    def machine_idle(self) -> float:
        return self.idle_seconds / self.seconds

    def __add__(self, other: Measured) -> Measured:
        return Measured(
            self.runs + other.runs,
            self.seconds + other.seconds,
            max(self.peak_mib, other.peak_mib),
            self.cpu_seconds + other.cpu_seconds,
            self.sqs_requests + other.sqs_requests,
            self.moto_cpu_seconds + other.moto_cpu_seconds,
            self.idle_seconds + other.idle_seconds,
        )


def cpu_seconds(pid: int) -> float:
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def measure(
    path: Route,
    runs: list[RunRequest],
    moto: MotoServer,
    moto_log: Path,
    timeout: float,
    window: int,
) -> Measured:
    assert moto.process is not None
    ids = [str(r.run_id) for r in runs]
    ours = path.calls + path.results.calls
    logged = requests_logged(moto_log)
    cpu = cpu_seconds(path.worker_pid)
    moto_cpu = cpu_seconds(moto.process.pid)
    idle = psutil.cpu_times().idle
    with Peak(path.worker_pid) as peak:
        started = time.perf_counter()
        deadline = started + timeout
        # Fed as they are taken, never more than a window ahead: a run queue deep in
        # backlog costs moto a scan of every message on each receive (it slowed to a
        # fifth at 1,500), and a fleet's dispatcher spreads runs over the minute anyway.
        for first in range(0, len(runs), 10):
            while first - path.results.count(ids) >= window:
                if time.perf_counter() > deadline:
                    break
                time.sleep(0.005)
            path.send(runs[first : first + 10])
        while path.results.count(ids) < len(ids):
            if time.perf_counter() > deadline:
                raise WrongResult(
                    f"{path.name}: {path.results.count(ids)} of {len(ids)} results in {timeout:g}s"
                )
            time.sleep(0.05)
        seconds = path.results.last_arrival - started
    cpu = cpu_seconds(path.worker_pid) - cpu
    moto_cpu = cpu_seconds(moto.process.pid) - moto_cpu
    idle = psutil.cpu_times().idle - idle
    time.sleep(0.5)  # the last deletes reach moto's log
    worker_requests = requests_logged(moto_log) - logged - (path.calls + path.results.calls - ours)
    return Measured(len(ids), seconds, peak.peak, cpu, worker_requests, moto_cpu, idle)


def bare_pool(url: str, count: int, threads: int) -> float:
    """Checks per second of ``threads`` threads doing ``requests.get`` on ``url``."""

    def one(_: int) -> bool:
        response = requests.get(url, timeout=30)
        return response.status_code == 200 and response.content == b"ok, slowly"

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(threads)))  # warm-up: every thread started
        started = time.perf_counter()
        outcomes = list(pool.map(one, range(count)))
        seconds = time.perf_counter() - started
    if not all(outcomes):
        raise WrongResult(f"bare pool: {outcomes.count(False)} of {count} requests failed")
    return count / seconds


def bench_check(url: str) -> dict[str, Any]:
    check = Check.model_validate(
        {"id": "capacity", "type": "http", "locations": [LOCATION], "request": {"url": url}}
    )
    return check.snapshot()


def runs_for(url: str, count: int) -> list[RunRequest]:
    snapshot = bench_check(url)
    return [RunRequest(uuid.uuid4(), snapshot, LOCATION, datetime.now(UTC)) for _ in range(count)]


def synmon_path(
    stack: ExitStack, settings: Settings, env: dict[str, str], folder: Path
) -> tuple[Route, subprocess.Popen[bytes]]:
    synmon = Synmon(env, folder)
    synmon.command("queues", "--create")
    worker = synmon.start("worker", "worker", "-l", LOCATION, "-k", "http")
    stack.callback(synmon.stop_all)
    sqs = client(settings)
    results_url = sqs.get_queue_url(QueueName=queue_name(settings, "results"))["QueueUrl"]
    queue = queue_name(settings, "run", LOCATION, "http")
    results = stack.enter_context(Results(sqs, results_url))
    path = Route(
        "synmon worker",
        sqs,
        queue,
        sqs.get_queue_url(QueueName=queue)["QueueUrl"],
        results,
        worker.pid,
        lambda r: run_request_message(r, settings).body,
    )
    return path, worker


def echo_path(stack: ExitStack, settings: Settings, moto: MotoServer, concurrency: int) -> Route:
    sqs = client(settings)
    queue = "bench-echo-run"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    results_url = sqs.create_queue(QueueName="bench-echo-results")["QueueUrl"]
    env = {
        **os.environ,
        "ECHO_QUEUE": queue,
        "ECHO_QUEUE_URL": url,
        "ECHO_RESULTS_URL": results_url,
        "ECHO_ENDPOINT": moto.endpoint,
        "ECHO_BROKER": f"sqs://test:test@127.0.0.1:{moto.port}",
        "ECHO_POOL_CONNECTIONS": str(connection_pool_size(settings)),
        "ECHO_WAIT_TIME_SECONDS": str(settings.sqs_wait_time_seconds),
        "ECHO_POLLING_INTERVAL": str(settings.sqs_polling_interval),
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.echo_celery",
            "worker",
            "-P",
            settings.http_pool,
            "-c",
            str(concurrency),
            "-O",
            "fair",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    stack.callback(kill_group, worker)
    results = stack.enter_context(Results(sqs, results_url))
    limits = time_limits(settings, "http")
    return Route(
        "plain Celery echo worker",
        sqs,
        queue,
        url,
        results,
        worker.pid,
        lambda r: celery_task_body(
            "synmon.run_http",
            run_request_json(r, settings.message_version),
            queue,
            task_id=str(r.run_id),
            time_limits=limits,
        ),
    )


def warm_up(path: Route, url: str) -> None:
    """Every thread of the worker started and its connections open before the clock."""
    runs = runs_for(url, WARM_UP)
    path.send(runs)
    ids = [str(r.run_id) for r in runs]
    deadline = time.monotonic() + 120
    while path.results.count(ids) < len(ids):
        if time.monotonic() > deadline:
            raise WrongResult(f"{path.name}: warm-up runs did not all come back")
        time.sleep(0.1)


def figures_for(
    delay: float,
    count: int,
    concurrency: int,
    synmon: Measured,
    echo: Measured,
    bare: float,
    size: Size,
    pool: str = "threads",
) -> list[Figure]:
    bound_name, bound = (
        ("moto's ceiling (plain Celery echo worker)", echo.rate)
        if echo.rate <= bare
        else (f"bare pool of {concurrency} threads, no queue", bare)
    )
    ratio = synmon.rate / bound
    label = f"{int(delay * 1000)} ms" if delay < 1 else f"{delay:g} s"
    return [
        Figure(
            "capacity",
            f"checks/s, 1 worker ({pool}, -c {concurrency}), target {label}, {count} runs",
            "checks/s",
            synmon.rate,
            bound,
            f"bound: {bound_name}",
            goal=f">= {GOAL_RATIO} of the bound",
            met=ratio >= GOAL_RATIO if size == "full" else None,
            notes=[
                f"bare pool {bare:,.1f}/s (ratio {synmon.rate / bare:.2f}); "
                f"moto echo {echo.rate:,.1f}/s (ratio {synmon.rate / echo.rate:.2f}); "
                f"ideal {concurrency / delay:,.0f}/s",
                f"worker CPU {synmon.cpu_ms:.1f} ms/check (echo {echo.cpu_ms:.1f}); "
                f"worker SQS requests/check {synmon.requests:.2f} (echo {echo.requests:.2f})",
                f"moto busy {synmon.moto_busy:.2f} cores (echo {echo.moto_busy:.2f}); "
                f"machine idle {synmon.machine_idle:.2f} cores (echo {echo.machine_idle:.2f})",
            ],
        ),
        Figure(
            "capacity",
            f"worker peak RSS, target {label}",
            "MiB",
            synmon.peak_mib,
            echo.peak_mib,
            f"plain Celery echo worker, {pool} pool of {concurrency}",
            better="lower",
            goal=f"<= {GOAL_RSS_MIB:.0f} MiB",
            met=synmon.peak_mib <= GOAL_RSS_MIB if size == "full" else None,
            notes=["RSS of the worker and its children (psutil), sampled every 50 ms"],
        ),
    ]


def run(size: Size) -> list[Figure]:
    folder = Path(tempfile.mkdtemp(prefix="synmon-bench-"))
    moto_log = folder / "moto.log"
    figures: list[Figure] = []
    with ExitStack() as stack:
        url = stack.enter_context(slow_target.running())
        moto = stack.enter_context(logged_moto(moto_log))
        port = url.split(":")[2].split("/", maxsplit=1)[0]
        env = {
            "SYNMON_ENV": "test",
            "SYNMON_SQS_ENDPOINT": moto.endpoint,
            "SYNMON_LOCATIONS": LOCATION,
            "SYNMON_DATA_DIR": str(folder),
            "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{port}",
            # The worker's defaults, unless the environment says otherwise (to compare
            # another pool or concurrency: SYNMON_HTTP_CONCURRENCY=200 python -m bench capacity).
            **{k: os.environ[k] for k in TUNABLE if k in os.environ},
        }
        settings = load_settings(env)
        concurrency = settings.http_concurrency
        synmon, worker = synmon_path(stack, settings, env, folder)
        echo = echo_path(stack, settings, moto, concurrency)
        warm_up(synmon, f"{url}?delay=0")
        warm_up(echo, f"{url}?delay=0")
        idle = tree_rss(worker.pid)
        window = concurrency + WINDOW_SPARE
        for delay, count in SIZES[size].items():
            target = f"{url}?delay={delay:g}"
            timeout = 60 + 4 * count / min(concurrency / delay, 25)
            # Back to back, in rounds of alternating order, so that a noisy moment of the
            # machine (or moto's drift) hits them alike.
            bare = bare_pool(target, count, concurrency)
            share = count // ROUNDS
            rounds: dict[str, list[Measured]] = {echo.name: [], synmon.name: []}
            for round_ in range(ROUNDS):
                for route in (echo, synmon) if round_ % 2 == 0 else (synmon, echo):
                    runs = runs_for(target, share)
                    rounds[route.name].append(measure(route, runs, moto, moto_log, timeout, window))
            echoed, measured = (sum(rounds[r.name][1:], rounds[r.name][0]) for r in (echo, synmon))
            figures.extend(
                figures_for(
                    delay, count, concurrency, measured, echoed, bare, size, settings.http_pool
                )
            )
        figures[1].notes.append(f"the same worker idle, after its warm-up: {idle:,.1f} MiB")
        time.sleep(GRACE)  # for a doubled result to arrive
        figures[0].notes.append(
            f"result messages received twice from the queue (one MessageId; ingest keeps one): "
            f"synmon {synmon.results.redelivered}, echo {echo.results.redelivered}; "
            f"mean result {synmon.results.body_bytes / max(1, len(synmon.results.message_ids)):,.0f} B, "
            f"run request {len(run_request_message(runs_for(url, 1)[0], settings).body):,} B"
        )
        wrong = [
            exactly_once(
                synmon.name, synmon.results, synmon.sent, (folder / "worker.log").read_text()
            ),
            exactly_once(echo.name, echo.results, echo.sent),
        ]
        if worker.poll() is not None:
            wrong.append(f"the synmon worker exited ({worker.returncode}) during the run")
        if any(wrong):
            raise WrongResult("; ".join(w for w in wrong if w), figures)
    return figures

"""HTTP executor: checks per second of a worker's pool against a local server, next to a
bare ``requests`` loop with the same concurrency against the same server.

Both open a fresh connection per check (a check measures DNS, connect and TLS every
time; ``requests.get`` makes a new session every call), both read the whole body.
"""

from __future__ import annotations

import multiprocessing
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from bench.common import Figure, Size, WrongResult

SIZES = {"tiny": 200, "full": 4000}
ROUNDS = {"tiny": 1, "full": 3}
PROCESSES = 4


@contextmanager
def target() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.target_server"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/ok"
    finally:
        process.kill()
        process.wait()


def synmon_loop(url: str, count: int) -> tuple[list[str], float]:
    from app.definitions.models import Check
    from app.execution.guard import TargetGuard
    from app.execution.http.check import run_http_check
    from app.execution.runs import RunRequest
    from config.settings import load_settings

    port = url.split(":")[2].split("/", maxsplit=1)[0]
    settings = load_settings({"SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{port}"})
    guard = TargetGuard(settings.allow_private_targets, settings.allowed_targets)
    check = Check.model_validate(
        {"id": "bench", "type": "http", "locations": ["local"], "request": {"url": url}}
    )
    snapshot = check.snapshot()
    statuses = []
    cpu = time.process_time()
    for _ in range(count):
        request = RunRequest(uuid.uuid4(), snapshot, "local", datetime.now(UTC))
        statuses.append(run_http_check(check, request, settings, guard).status)
    return statuses, time.process_time() - cpu


def bare_loop(url: str, count: int) -> tuple[list[str], float]:
    import requests

    statuses = []
    cpu = time.process_time()
    for _ in range(count):
        response = requests.get(url, timeout=10)
        _ = response.content
        statuses.append("passed" if response.status_code < 400 else "failed")
    return statuses, time.process_time() - cpu


def measure(
    pool: multiprocessing.pool.Pool, loop: object, url: str, total: int, concurrency: int
) -> tuple[float, float]:
    """(checks per second, CPU milliseconds per check in the checking processes)."""
    per_process = total // concurrency
    started = time.perf_counter()
    results = pool.starmap(loop, [(url, per_process)] * concurrency)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    statuses = [status for chunk, _cpu in results for status in chunk]
    if len(statuses) != per_process * concurrency or set(statuses) != {"passed"}:
        raise WrongResult(f"{loop.__name__}: {len(statuses)} checks, outcomes {set(statuses)}")  # type: ignore[attr-defined]
    return len(statuses) / seconds, 1000 * sum(cpu for _, cpu in results) / len(statuses)


def run(size: Size) -> list[Figure]:
    # A fixed number of processes, not SYNMON_HTTP_CONCURRENCY: that is now a threads
    # pool's 100, and 100 forked loops would measure the local server's accept queue.
    # This benchmark is the CPU cost of one check; bench/capacity.py measures a worker's pool.
    concurrency = PROCESSES
    total = SIZES[size]
    synmon_runs: list[tuple[float, float]] = []
    bare_runs: list[tuple[float, float]] = []
    with target() as url, multiprocessing.get_context("fork").Pool(concurrency) as pool:
        pool.starmap(bare_loop, [(url, 5)] * concurrency)  # warm up imports in every process
        pool.starmap(synmon_loop, [(url, 5)] * concurrency)
        for _ in range(ROUNDS[size]):  # interleaved, so that a noisy moment hits both
            bare_runs.append(measure(pool, bare_loop, url, total, concurrency))
            synmon_runs.append(measure(pool, synmon_loop, url, total, concurrency))
    synmon_rate = statistics.median(r for r, _ in synmon_runs)
    bare_rate = statistics.median(r for r, _ in bare_runs)
    synmon_cpu = statistics.median(c for _, c in synmon_runs)
    bare_cpu = statistics.median(c for _, c in bare_runs)
    return [
        Figure(
            "http",
            f"checks/s, {concurrency} processes",
            "checks/s",
            synmon_rate,
            bare_rate,
            f"bare requests.get loop, {concurrency} processes, same local server",
            notes=[
                "both are bound by the local server on this machine; the CPU cost below is synmon's own"
            ],
        ),
        Figure(
            "http",
            "CPU cost per check",
            "ms",
            synmon_cpu,
            bare_cpu,
            "bare requests.get loop, same concurrency",
            better="lower",
            goal="<= 1.25x the bare loop",
            met=synmon_cpu <= 1.25 * bare_cpu if size == "full" else None,
        ),
    ]

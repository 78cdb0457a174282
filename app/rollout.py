"""The rolling update over local processes, in the order the Terraform path follows.

1. Start the new workers (the new release's environment: ``SYNMON_RELEASE``,
   ``SYNMON_MESSAGE_VERSION`` ...).
2. Wait until ``synmon health`` reports each of them connected and consuming: the
   readiness check that ``remote-exec`` runs before Terraform destroys an instance.
3. Stop the old workers one by one with SIGTERM, each time waiting for it to drain
   (finish its running checks, hand back what it prefetched, exit).

Nothing is lost or doubled because every run request stays in SQS until a worker of
either release has run it and published its result, and both releases read both
message versions.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from app import health
from config.queues import Kind, max_check_seconds
from config.settings import Settings

log = logging.getLogger("synmon.rollout")


class RolloutError(RuntimeError):
    pass


@dataclass
class NewWorker:
    name: str
    pid: int
    ready_after_s: float = 0.0


@dataclass
class Drained:
    pid: int
    seconds: float


@dataclass
class Report:
    started: list[NewWorker] = field(default_factory=list)
    drained: list[Drained] = field(default_factory=list)


def start_worker(
    settings: Settings,
    location: str,
    kind: Kind,
    name: str,
    concurrency: int,
    environment: Mapping[str, str],
) -> int:
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name.split('@', maxsplit=1)[0]}.log", "ab") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "worker",
                "-l",
                location,
                "-k",
                kind,
                "-c",
                str(concurrency),
                "--name",
                name,
            ],
            env=dict(environment),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the new workers outlive the rollout command
            cwd=Path.cwd(),
        )
    return process.pid


def wait_ready(settings: Settings, name: str, pid: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        reports = [r for r in health.read(settings, name) if r.pid == pid]
        if reports and reports[0].ready():
            return time.monotonic() - started
        if not psutil.pid_exists(pid):
            raise RolloutError(f"new worker {name} (pid {pid}) exited before it was ready")
        time.sleep(0.5)
    raise RolloutError(f"new worker {name} not ready within {timeout:g}s")


def drain(pid: int, timeout: float) -> float:
    """SIGTERM, then wait for the process to be gone (it finishes its running checks)."""
    started = time.monotonic()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0.0
    while time.monotonic() - started < timeout:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    else:
        raise RolloutError(f"old worker {pid} did not drain within {timeout:g}s")
    return time.monotonic() - started


def rollout(
    settings: Settings,
    location: str,
    kind: Kind,
    count: int,
    old_pids: Sequence[int],
    environment: Mapping[str, str],
    concurrency: int = 1,
    progress: Callable[[str], None] = print,
) -> Report:
    report = Report()
    release = environment.get("SYNMON_RELEASE", settings.release)
    host = os.uname().nodename
    for index in range(count):
        name = f"{kind}-{location}-{release}-{index}@{host}"
        pid = start_worker(settings, location, kind, name, concurrency, environment)
        report.started.append(NewWorker(name, pid))
        progress(f"started new worker {name} (pid {pid})")
    for worker in report.started:
        worker.ready_after_s = wait_ready(settings, worker.name, worker.pid, timeout=120)
        progress(f"new worker {worker.name} ready after {worker.ready_after_s:.1f}s")
    grace = max_check_seconds(settings, kind) + settings.sqs_visibility_margin
    for index, pid in enumerate(old_pids, start=1):
        seconds = drain(pid, grace)
        report.drained.append(Drained(pid, seconds))
        progress(
            f"stopped old worker {index}/{len(old_pids)} (pid {pid}) after draining {seconds:.1f}s"
        )
    return report

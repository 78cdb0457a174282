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

An old worker is signalled only once it is known to be one: before anything starts,
each ``--replace`` PID must be a live process whose command line runs a synmon (or
``celery -A app``) worker, not one of its pool processes, and whose health report in
this installation names the run queue being rolled. A stale PID, or one the system
has since given to another process, is refused with a message and nothing is touched.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from app.ops import health
from app.pipeline.queues import Kind, max_check_seconds, queue_name
from config.errors import SynmonError
from config.settings import Settings

# Command lines are quoted in messages up to this length.
MAX_QUOTED_COMMAND = 200

log = logging.getLogger("synmon.rollout")


class RolloutError(SynmonError, RuntimeError):
    """The rollout stopped; the message says what was started or stopped so far."""


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


def _command_of(argv: Sequence[str]) -> tuple[str, list[str]]:
    """(program, its arguments) of a command line, the Python interpreter skipped:
    ``python -m app.cli worker`` gives ("app.cli", ["worker"])."""
    if not argv:
        return "", []
    program, rest = Path(argv[0]).name, list(argv[1:])
    if program.startswith("python"):
        while rest and rest[0].startswith("-") and rest[0] != "-m":
            if rest[0] in ("-c", "-"):
                return "python " + rest[0], rest[1:]
            rest = rest[1:]
        if len(rest) >= 2 and rest[0] == "-m":
            return rest[1], rest[2:]
        if not rest:
            return "python", []
        program, rest = Path(rest[0]).name, rest[1:]
    return program, rest


def _celery_app(arguments: Sequence[str]) -> str | None:
    for index, argument in enumerate(arguments):
        if argument in ("-A", "--app") and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith("--app="):
            return argument.removeprefix("--app=")
        if argument.startswith("-A") and len(argument) > 2:
            return argument[2:]
    return None


def is_worker_command(argv: Sequence[str]) -> bool:
    """Whether ``argv`` runs a synmon worker: ``synmon worker`` (what the Docker image
    execs), ``python -m app.cli worker`` (what a rollout starts) or ``celery -A app
    worker``."""
    program, arguments = _command_of(argv)
    if program in ("synmon", "app.cli"):
        return "worker" in arguments
    if program in ("celery", "celery.__main__"):
        app = _celery_app(arguments)
        return (
            "worker" in arguments and app is not None and app.split(".")[0].split(":")[0] == "app"
        )
    return False


def _quoted(argv: Sequence[str]) -> str:
    text = shlex.join(argv) or "(no command line)"
    return text if len(text) <= MAX_QUOTED_COMMAND else text[: MAX_QUOTED_COMMAND - 3] + "..."


def old_workers(
    settings: Settings, location: str, kind: Kind, pids: Sequence[int]
) -> list[psutil.Process]:
    """The processes behind ``pids``, each verified to be a worker of this installation
    serving ``location`` and ``kind``; ``RolloutError`` naming every PID that is not.

    The ``psutil.Process`` objects remember each process's start time: signalling
    one later refuses a PID that the system has given to another process since.
    """
    queue = queue_name(settings, "run", location, kind)
    reports = {report.pid: report for report in health.read(settings)}
    problems: list[str] = []
    found: list[psutil.Process] = []
    seen: set[int] = set()
    for pid in pids:
        if pid in seen:
            problems.append(f"pid {pid} is given twice")
            continue
        seen.add(pid)
        if pid <= 0:
            # kill(0) signals this process group and kill(-1) every process there is.
            problems.append(f"pid {pid} is not a process id")
            continue
        if pid == os.getpid():
            problems.append(f"pid {pid} is this rollout itself")
            continue
        try:
            process = psutil.Process(pid)
            argv = process.cmdline()
            parent = process.parent()
            parent_argv = parent.cmdline() if parent is not None else []
        except psutil.NoSuchProcess:
            problems.append(f"pid {pid}: no such process (a stale pid?)")
            continue
        except psutil.AccessDenied:
            problems.append(f"pid {pid}: not allowed to inspect it (another user's process?)")
            continue
        if not is_worker_command(argv):
            problems.append(f"pid {pid} is not a synmon worker: {_quoted(argv)}")
            continue
        if parent is not None and is_worker_command(parent_argv):
            problems.append(
                f"pid {pid} is a pool process of worker {parent.pid}: replace {parent.pid}"
            )
            continue
        report = reports.get(pid)
        if report is None:
            problems.append(
                f"pid {pid} runs {_quoted(argv)} but no health report in "
                f"{health.folder(settings)} names it: not a worker of this installation?"
            )
            continue
        if queue not in report.queues:
            problems.append(
                f"pid {pid} ({report.name}) serves {', '.join(report.queues) or 'no queue'}, "
                f"not {queue}"
            )
            continue
        found.append(process)
    if problems:
        raise RolloutError(
            "refusing to signal: " + "; ".join(problems) + ". Nothing was started or stopped."
        )
    return found


def start_worker(
    settings: Settings,
    location: str,
    kind: Kind,
    name: str,
    concurrency: int | None,
    environment: Mapping[str, str],
) -> int:
    """A new worker; ``concurrency`` None leaves it the default of its release's settings
    (``SYNMON_HTTP_CONCURRENCY``, ``SYNMON_BROWSER_CONCURRENCY``)."""
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    slots = [] if concurrency is None else ["-c", str(concurrency)]
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
                *slots,
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


def drain(process: psutil.Process, timeout: float) -> float:
    """SIGTERM, then wait for the process to be gone (it finishes its running checks).

    ``process`` is the one verified by ``old_workers``: if it has exited and its PID
    now belongs to another process, psutil refuses to signal (NoSuchProcess).
    """
    started = time.monotonic()
    try:
        process.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        return 0.0
    except psutil.AccessDenied:
        raise RolloutError(f"not allowed to signal old worker {process.pid}") from None
    while time.monotonic() - started < timeout:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    else:
        raise RolloutError(f"old worker {process.pid} did not drain within {timeout:g}s")
    return time.monotonic() - started


def rollout(
    settings: Settings,
    location: str,
    kind: Kind,
    count: int,
    old_pids: Sequence[int],
    environment: Mapping[str, str],
    concurrency: int | None = None,
    progress: Callable[[str], None] = print,
) -> Report:
    if count < 1:
        raise RolloutError(f"--count must be at least 1 (got {count}): a rollout starts workers")
    if concurrency is not None and concurrency < 1:
        raise RolloutError(f"--concurrency must be at least 1 (got {concurrency})")
    # Before anything starts: a PID that is not an old worker stops the rollout here.
    old = old_workers(settings, location, kind, old_pids)
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
    for index, process in enumerate(old, start=1):
        seconds = drain(process, grace)
        report.drained.append(Drained(process.pid, seconds))
        progress(
            f"stopped old worker {index}/{len(old)} (pid {process.pid}) "
            f"after draining {seconds:.1f}s"
        )
    return report

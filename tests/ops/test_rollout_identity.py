"""``synmon rollout --replace PID`` signals synmon workers of this installation only.

Real processes throughout: a ``sleep``, impostors whose command line reads like a
worker's, a forking "worker" whose pool process is named instead of it. The rollout
must refuse each of them before it starts or signals anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
import pytest

from app.ops import health
from app.ops.rollout import RolloutError, drain, is_worker_command, old_workers, rollout
from app.pipeline.queues import queue_name
from config.settings import Settings
from tests.support.processes import synmon_command, wait_until
from tests.support.settings import make_settings

LOCATION = "eu-west-1"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(SYNMON_DATA_DIR=str(tmp_path / "data"), SYNMON_LOCATIONS=LOCATION)


@contextmanager
def running(argv: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """A process of its own session, killed with everything it started at the end."""
    process = subprocess.Popen(argv, start_new_session=True)
    try:
        wait_until(lambda: _cmdline(process.pid) == argv, 10, 0.05, f"{argv[0]} started")
        yield process
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


def impostor(tmp_path: Path, forks: bool = False) -> list[str]:
    """A harmless script called ``synmon``, run as ``synmon worker ...``: by its command
    line alone it is a worker. With ``forks`` it leaves a child, like a pool process."""
    script = tmp_path / "bin" / "synmon"
    script.parent.mkdir(exist_ok=True)
    child_file = tmp_path / "child.pid"
    body = "import os, time\n"
    if forks:
        body += (
            f"child = os.fork()\nif child:\n    open({str(child_file)!r}, 'w').write(str(child))\n"
        )
    body += "time.sleep(300)\n"
    script.write_text(body)
    return [sys.executable, str(script), "worker", "-l", LOCATION, "-k", "http"]


def write_report(settings: Settings, name: str, pid: int, queues: list[str]) -> None:
    """A health report as a worker writes it (``app.ops.health.write`` writes its own pid)."""
    folder = health.folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    report = {
        "name": name,
        "pid": pid,
        "state": health.READY,
        "release": "v1",
        "queues": queues,
        "updated_at": time.time(),
    }
    (folder / f"{name}.json").write_text(json.dumps(report))


def synmon_rollout(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SYNMON_DATA_DIR": str(settings.data_dir),
        "SYNMON_LOCATIONS": LOCATION,
        "SYNMON_ENV": "test",
    }
    return synmon_command("rollout", "-l", LOCATION, "-k", "http", *args, env=env)


@pytest.mark.processes
def test_the_command_refuses_to_signal_a_sleep(settings: Settings) -> None:
    with running(["sleep", "300"]) as sleeper:
        result = synmon_rollout(settings, "--count", "1", "--replace", str(sleeper.pid))
        assert result.returncode != 0
        assert f"pid {sleeper.pid} is not a synmon worker: sleep 300" in result.stderr
        assert "Nothing was started or stopped" in result.stderr
        assert "started new worker" not in result.stdout
        assert not (settings.data_dir / "logs").exists()  # no worker was started
        time.sleep(0.5)
        assert sleeper.poll() is None  # still running: never signalled


@pytest.mark.processes
def test_count_must_be_at_least_one(settings: Settings) -> None:
    with running(["sleep", "300"]) as sleeper:
        result = synmon_rollout(settings, "--count", "0", "--replace", str(sleeper.pid))
        assert result.returncode != 0
        # app/ops/rollout.py says so, or click first if the option declares its range.
        assert "--count" in result.stderr, result.stderr
        assert "at least 1" in result.stderr or "x>=1" in result.stderr, result.stderr
        assert "started new worker" not in result.stdout
        with pytest.raises(RolloutError, match="--count must be at least 1"):
            rollout(settings, LOCATION, "http", -1, [sleeper.pid], dict(os.environ))
        assert sleeper.poll() is None


@pytest.mark.processes
def test_a_stale_pid_is_refused(settings: Settings) -> None:
    gone = subprocess.Popen(["sleep", "0"])
    gone.wait(timeout=10)
    with pytest.raises(RolloutError, match=rf"pid {gone.pid}: no such process \(a stale pid\?\)"):
        old_workers(settings, LOCATION, "http", [gone.pid])


@pytest.mark.parametrize(
    ("pids", "message"),
    [
        ([0], "pid 0 is not a process id"),
        ([-1], "pid -1 is not a process id"),
        ([os.getpid()], "is this rollout itself"),
    ],
)
def test_pids_that_would_signal_more_than_a_worker(
    settings: Settings, pids: list[int], message: str
) -> None:
    with pytest.raises(RolloutError, match=message):
        old_workers(settings, LOCATION, "http", pids)


@pytest.mark.processes
def test_a_worker_by_name_alone_is_not_enough(settings: Settings, tmp_path: Path) -> None:
    argv = impostor(tmp_path)
    with running(argv) as fake:
        with pytest.raises(RolloutError, match=f"pid {fake.pid} runs .* but no health report"):
            old_workers(settings, LOCATION, "http", [fake.pid])

        browser_queue = queue_name(settings, "run", LOCATION, "browser")
        write_report(settings, "browser-eu-west-1@test", fake.pid, [browser_queue])
        with pytest.raises(RolloutError, match=f"serves {browser_queue}, not .*-http"):
            old_workers(settings, LOCATION, "http", [fake.pid])
        assert fake.poll() is None

        # Its report names the queue being rolled: now it is an old worker of this
        # installation, and draining it really signals it.
        http_queue = queue_name(settings, "run", LOCATION, "http")
        write_report(settings, "browser-eu-west-1@test", fake.pid, [http_queue])
        (process,) = old_workers(settings, LOCATION, "http", [fake.pid])
        drain(process, timeout=10)
        assert fake.wait(timeout=10) == -signal.SIGTERM


@pytest.mark.processes
def test_a_pool_process_is_refused(settings: Settings, tmp_path: Path) -> None:
    argv = impostor(tmp_path, forks=True)
    with running(argv) as parent:
        child_file = tmp_path / "child.pid"
        wait_until(lambda: child_file.exists() and child_file.read_text(), 10, 0.05, "fork")
        child = int(child_file.read_text())
        queue = queue_name(settings, "run", LOCATION, "http")
        write_report(settings, "http-eu-west-1@test", child, [queue])
        with pytest.raises(
            RolloutError, match=f"pid {child} is a pool process of worker {parent.pid}"
        ):
            old_workers(settings, LOCATION, "http", [child])
        assert psutil.pid_exists(child)


@pytest.mark.processes
def test_a_process_that_exited_after_the_check_is_not_signalled(
    settings: Settings, tmp_path: Path
) -> None:
    with running(impostor(tmp_path)) as fake:
        write_report(
            settings,
            "http-eu-west-1@test",
            fake.pid,
            [queue_name(settings, "run", LOCATION, "http")],
        )
        (process,) = old_workers(settings, LOCATION, "http", [fake.pid])
        os.killpg(fake.pid, signal.SIGKILL)
        fake.wait(timeout=10)
        # psutil remembers when the verified process started: a PID that is gone (or
        # that another process has taken since) is not signalled.
        assert drain(process, timeout=5) == 0.0


@pytest.mark.parametrize(
    ("argv", "worker"),
    [
        (["/usr/bin/python3", "-m", "app.cli", "worker", "-l", "eu-west-1", "-k", "http"], True),
        (["/srv/venv/bin/python", "/srv/venv/bin/synmon", "worker", "-l", "x", "-k", "http"], True),
        (["synmon", "worker", "-l", "eu-west-1", "-k", "browser"], True),
        (["celery", "-A", "app", "worker", "-Q", "q"], True),
        (["python3.11", "-u", "-m", "celery", "--app=app.celery", "worker"], True),
        (["celery", "-Aapp", "worker"], True),
        (["/usr/bin/python3", "-m", "app.cli", "beat"], False),
        (["synmon", "ingest"], False),
        (["celery", "-A", "other", "worker"], False),
        (["celery", "-A", "application", "worker"], False),
        (["python", "-c", "import app.cli; worker"], False),
        (["sleep", "300"], False),
        (["bash", "-c", "synmon worker"], False),
        ([], False),
    ],
)
def test_what_counts_as_a_worker_command_line(argv: list[str], worker: bool) -> None:
    assert is_worker_command(argv) is worker

"""Starts the plain Celery app of ``tests.support.plain_celery`` as a worker process on
one queue of a local SQS endpoint (tests, and the benchmarks' trivial-task baseline)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.processes import ROOT


def start_plain_worker(
    moto_port: int,
    queue: str,
    queue_url: str,
    *options: str,
    out: Path | None = None,
    log_level: str = "error",
) -> subprocess.Popen[bytes]:
    """``celery worker`` with ``options`` (pool, concurrency); stop it with kill_group."""
    env = {
        **os.environ,
        "PLAIN_QUEUE": queue,
        "PLAIN_QUEUE_URL": queue_url,
        "PLAIN_BROKER": f"sqs://test:test@127.0.0.1:{moto_port}",
    }
    if out is not None:
        env["PLAIN_OUT"] = str(out)
    command = [sys.executable, "-m", "celery", "-A", "tests.support.plain_celery", "worker"]
    return subprocess.Popen(
        [
            *command,
            *options,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            log_level,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

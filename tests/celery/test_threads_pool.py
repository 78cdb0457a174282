"""An HTTP worker on the threads pool keeps many checks in flight in one process, and
takes from SQS no more than it can start."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest

from app.pipeline.queues import queue_name
from app.pipeline.sqs import client_for, queue_urls
from tests.support.faults import FAST_QUEUES, assert_exactly_once, send_runs
from tests.support.pipeline import http_check, running_pipeline
from tests.support.processes import wait_until
from tests.support.servers import serving

pytestmark = pytest.mark.processes

THREADS = 30
ANSWER_AFTER = 2.5  # seconds: long enough that the first runs are still in flight


class CountingServer(ThreadingHTTPServer):
    """Answers every request after ANSWER_AFTER seconds; remembers the most at once."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CountingHandler)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


class CountingHandler(BaseHTTPRequestHandler):
    server: CountingServer

    def do_GET(self) -> None:
        self.server.enter()
        try:
            time.sleep(ANSWER_AFTER)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        finally:
            self.server.leave()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def not_visible(settings: Any) -> int:
    name = queue_name(settings, "run", "eu-west-1", "http")
    attributes = client_for(settings, name).get_queue_attributes(
        QueueUrl=queue_urls(settings)(name),
        AttributeNames=["ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_one_worker_process_runs_its_threads_worth_of_checks_at_once(tmp_path: Path) -> None:
    with serving(CountingServer()) as target:
        port = target.server_address[1]
        env = {
            **FAST_QUEUES,
            "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{port}",
            "SYNMON_HTTP_POOL": "threads",  # the default, named: it is what this test is about
        }
        workers = [("eu-west-1", "http", THREADS)]
        with running_pipeline(tmp_path, env, workers=workers, beat=False) as pipeline:
            url = f"http://127.0.0.1:{port}/"
            pipeline.sync({"checks": [http_check("slow", url, request={"timeout": "5s"})]})
            (worker,) = [p for name, p in pipeline.synmon.processes if name.startswith("worker")]
            run_ids = send_runs(pipeline.settings, pipeline.definition("slow"), 2 * THREADS)
            wait_until(lambda: target.peak >= THREADS * 0.8, 30, 0.05, "most threads busy")
            taken = not_visible(pipeline.settings)
            # The threads pool: all of it in the one worker process, none in children.
            assert psutil.Process(worker.pid).children() == []
            assert_exactly_once(pipeline, run_ids)
    # Received but not started, a message would wait out its visibility timeout for a
    # free thread: the worker takes at most what its threads can start.
    assert taken <= THREADS, taken
    assert target.peak <= THREADS

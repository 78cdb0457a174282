"""The benchmarks at a tiny size, so that they do not rot. (Speed is judged by running
them in full, `make bench`, never by a test.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.__main__ import BENCHMARKS
from tests.support.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.processes]


def test_every_benchmark_runs_and_checks_its_results(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--size", "tiny", "--json", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["failures"] == []
    assert set(report["seconds"]) == set(BENCHMARKS)
    figures = report["figures"]
    by_benchmark = {f["benchmark"] for f in figures}
    assert by_benchmark == {
        "dispatcher",
        "http",
        "end-to-end",
        "capacity",
        "ingest",
        "history",
        "browser",
        "memory",
    }
    metrics = {(f["benchmark"], f["metric"].split(",")[0]) for f in figures}
    # Issue 14's browser figures: the flow at concurrency 1, checks per GiB of one worker,
    # and throughput at the worker's concurrency against one at a time.
    assert {
        ("browser", "goto-click-read"),
        ("browser", "checks in flight per GiB"),
        ("browser", "checks waiting on their page"),
        ("browser", "browser per run"),
    } <= metrics
    (burst,) = [f for f in figures if f["metric"].endswith("due checks dispatched")]
    assert "best of 2 turns each" in burst["notes"][0]
    (e2e,) = [f for f in figures if f["benchmark"] == "end-to-end"]
    assert e2e["goal"] == ">= 0.9 of the trivial rate"
    for figure in figures:
        assert figure["synmon"] > 0, figure
        if figure["baseline"] is not None:
            # The report rounds a ratio to three decimals: 0.0137 is written 0.014.
            assert figure["ratio"] == pytest.approx(
                figure["synmon"] / figure["baseline"], rel=1e-2, abs=1e-3
            )
    assert "benchmark" in result.stdout and "machine:" in result.stdout


def test_a_wrong_result_fails_the_run(tmp_path: Path) -> None:
    """A benchmark that loses runs exits non-zero instead of reporting a speed."""
    script = tmp_path / "lossy.py"
    script.write_text(
        "import sys\n"
        "import bench.__main__ as m\n"
        "from bench.common import WrongResult\n"
        "import bench.dispatcher as d\n"
        "def run(size):\n"
        "    raise WrongResult('lost 3 runs')\n"
        "d.run = run\n"
        "sys.exit(m.main(['dispatcher', '--size', 'tiny']))\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1 and "WRONG RESULT in dispatcher: lost 3 runs" in result.stderr


class FakeHost:
    """Stands in for a BrowserHost to see the benchmark's own bookkeeping catch a
    wrong result: ``mode`` says what goes wrong with the third run."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.calls = 0
        self.first: Any = None
        self.lock = threading.Lock()

    def run(self, check: Any, request: Any, deliveries: int) -> Any:
        with self.lock:
            self.calls += 1
            third = self.calls == 3
            self.first = self.first or request.run_id
        run_id = request.run_id
        status = "passed"
        if third and self.mode == "lost":
            run_id = uuid.uuid4()  # a result, but not for this run
        elif third and self.mode == "doubled":
            run_id = self.first  # a second result for the first run
        elif third and self.mode == "failed":
            status = "failed"
        return SimpleNamespace(run_id=run_id, status=status)


@pytest.mark.parametrize("mode", ["lost", "doubled", "failed"])
@pytest.mark.parametrize("concurrency", [1, 4])
def test_the_browser_throughput_fails_on_a_lost_doubled_or_failed_run(
    mode: str, concurrency: int
) -> None:
    from bench.browser import throughput, waiting_check
    from bench.common import WrongResult

    check = waiting_check("http://127.0.0.1:9/slow-element")
    with pytest.raises(WrongResult, match=f"at concurrency {concurrency}"):
        throughput(FakeHost(mode), check, 6, concurrency)  # type: ignore[arg-type]
    rate, durations = throughput(FakeHost("none"), check, 6, concurrency)  # type: ignore[arg-type]
    assert rate > 0 and len(durations) == 6

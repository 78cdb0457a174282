"""The benchmarks at a tiny size, so that they do not rot. (Speed is judged by running
them in full, `make bench`, never by a test.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
        "browser",
        "memory",
    }
    for figure in figures:
        assert figure["synmon"] > 0, figure
        if figure["baseline"] is not None:
            assert figure["ratio"] == pytest.approx(figure["synmon"] / figure["baseline"], rel=1e-2)
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

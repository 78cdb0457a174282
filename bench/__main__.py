"""python -m bench [NAME ...] [--size tiny|full] [--json PATH]

Runs the benchmarks (all by default), prints a table, writes JSON with --json, and
exits non-zero if any benchmark produced wrong results (lost or doubled runs).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, WrongResult, table

BENCHMARKS = [
    "dispatcher",
    "http_executor",
    "end_to_end",
    "capacity",
    "ingest",
    "history",
    "browser",
    "memory",
]


def machine() -> dict[str, object]:
    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "names",
        nargs="*",
        choices=[*BENCHMARKS, []],
        metavar="NAME",
        help=f"one or more of {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--size", choices=["tiny", "full"], default="full")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    failed: list[str] = []
    # Every scratch folder (profiles, data directories) goes here, and goes with it.
    with tempfile.TemporaryDirectory(prefix="synmon-bench-", ignore_cleanup_errors=True) as scratch:
        tempfile.tempdir = scratch
        try:
            for name in args.names or BENCHMARKS:
                module = importlib.import_module(f"bench.{name}")
                print(f"running {name} ({args.size}) ...", file=sys.stderr, flush=True)
                started = time.monotonic()
                try:
                    figures.extend(module.run(args.size))
                except WrongResult as exc:
                    figures.extend(exc.figures)
                    failed.append(f"{name}: {exc}")
                    print(f"WRONG RESULT in {name}: {exc}", file=sys.stderr)
                timings[name] = round(time.monotonic() - started, 1)
        finally:
            tempfile.tempdir = None
    print(table(figures))
    print(f"\nmachine: {machine()}; seconds per benchmark: {timings}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "size": args.size,
                    "machine": machine(),
                    "seconds": timings,
                    "failures": failed,
                    "figures": [f.as_dict() for f in figures],
                },
                indent=2,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

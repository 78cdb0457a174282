"""The fast run's guard: there, a test that starts a process fails and names the marker it
lacks, instead of quietly making the fast run slow.

Every way the tests start a process goes through one of the functions patched here:
``subprocess.Popen`` (also under asyncio's subprocesses, pyppeteer's Chromium and
psutil.Popen), ``_posixsubprocess.fork_exec`` (multiprocessing's spawn and forkserver),
``os.fork`` (multiprocessing's fork) and ``os.posix_spawn``.
"""

from __future__ import annotations

import _posixsubprocess
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import pytest

# Set by ``make test-fast``, which also leaves out the tests marked ``processes``.
FAST_RUN = "SYNMON_TESTS_FAST"
MESSAGE = "this test starts a process: mark it processes (@pytest.mark.processes)"


class StartsAProcess(RuntimeError):
    """A process was started in the fast run."""


def fast_run() -> bool:
    return os.environ.get(FAST_RUN, "") not in ("", "0")


class ProcessGuard:
    """What was refused, and in which test, so that a refusal that some code caught and
    ignored still fails its test."""

    def __init__(self) -> None:
        self.test = ""  # the node id of the test being run, set by conftest's hook
        self.refused: list[tuple[str, str]] = []

    def refuse(self, what: str) -> Callable[..., NoReturn]:
        def refused(*args: Any, **kwargs: Any) -> NoReturn:
            self.refused.append((self.test, what))
            raise StartsAProcess(f"{MESSAGE} ({what})")

        return refused

    def take(self, test: str) -> list[str]:
        """What was refused in ``test`` so far; forgotten once taken."""
        taken = [what for node, what in self.refused if node == test]
        self.refused = [(node, what) for node, what in self.refused if node != test]
        return taken


GUARD = ProcessGuard()


@contextmanager
def processes_refused() -> Iterator[ProcessGuard]:
    """Until the end, every start of a process raises StartsAProcess."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", GUARD.refuse("subprocess.Popen"))
        patch.setattr(_posixsubprocess, "fork_exec", GUARD.refuse("fork_exec"))
        for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp"):
            patch.setattr(os, name, GUARD.refuse(f"os.{name}"))
        yield GUARD

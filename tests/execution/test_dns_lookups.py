"""A hanging resolver costs a worker a bounded number of threads, not one per check."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from app.execution import guard
from tests.support.processes import wait_until


def test_lookups_beyond_the_cap_fail_at_once_and_the_cap_frees_as_the_resolver_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The resolver is what the test is not about: it hangs until told to answer.
    answer = threading.Event()
    real = socket.getaddrinfo

    def hanging(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        answer.wait(10)
        return real("127.0.0.1", port, *args, **kwargs)

    monkeypatch.setattr(guard, "MAX_OUTSTANDING_LOOKUPS", 3)
    monkeypatch.setattr(guard, "_outstanding_lookups", threading.BoundedSemaphore(3))
    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    threads_before = threading.active_count()
    for _ in range(3):
        with pytest.raises(TimeoutError, match="took longer"):
            guard._getaddrinfo("slow.example", 80, 0.05)
    for _ in range(20):
        with pytest.raises(TimeoutError, match="3 lookups are still waiting"):
            guard._getaddrinfo("slow.example", 80, 0.05)
    assert threading.active_count() - threads_before <= 3
    answer.set()
    wait_until(lambda: threading.active_count() <= threads_before, 5, 0.01, "lookups answered")
    assert guard._getaddrinfo("slow.example", 80, 5.0)

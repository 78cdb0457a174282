"""The dispatcher: punctual, no drift, no burst, one run per slot even with two dispatchers."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.definitions.loader import load_text
from app.pipeline.dispatch import dispatch_due
from app.pipeline.schedule import phase
from app.pipeline.sqs import Outgoing
from app.pipeline.sync import sync
from app.pipeline.wire import decode_run_request
from app.storage.db import sessions
from config.settings import Settings
from tests.support.dispatching import T0, checks_yaml
from tests.support.envelopes import run_request_of
from tests.support.settings import make_settings


class Recorder:
    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.sent: list[Outgoing] = []
        self.calls = 0
        self.delay = delay
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, messages: Sequence[Outgoing]) -> None:
        time.sleep(self.delay)
        if self.fail:
            raise ConnectionError("SQS unreachable")
        with self.lock:
            self.calls += 1
            self.sent.extend(messages)

    def requests(self) -> list[Any]:
        return [decode_run_request(run_request_of(m.body)) for m in self.sent]


def setup(database_url: str, text: str, now: datetime = T0) -> tuple[Settings, Any]:
    settings = make_settings(SYNMON_DATABASE_URL=database_url)
    Session = sessions(database_url)
    from app.pipeline import sync as sync_module

    with Session() as session:
        definitions = load_text(text, "c.yaml", settings)
        with session.begin():
            plan = sync_module.plan(session, definitions)
            sync_module.apply(session, definitions, plan, now=now)
    return settings, Session


def tick(Session: Any, settings: Settings, sender: Recorder, now: datetime) -> None:
    dispatch_due(Session, settings, sender, now=lambda: now)


def test_each_slot_runs_once_within_a_tick_and_on_the_lattice(database_url: str) -> None:
    settings, Session = setup(database_url, checks_yaml(20))
    sender = Recorder()
    tick_seconds = 2
    for step in range(0, 62, tick_seconds):
        tick(Session, settings, sender, T0 + timedelta(seconds=step))
    requests = sender.requests()
    by_check: dict[str, list[datetime]] = {}
    for request in requests:
        by_check.setdefault(request.check_id, []).append(request.scheduled_at)
    assert set(by_check) == {f"c{i}" for i in range(20)}
    for check_id, slots in by_check.items():
        assert len(slots) == len(set(slots)), "a slot was dispatched twice"
        assert len(slots) in (6, 7)  # 62 s of 10 s periods
        offset = phase(check_id, 10)
        for slot in slots:
            seconds = (slot - datetime(2020, 1, 1, tzinfo=UTC)).total_seconds()
            assert abs((seconds - offset) / 10 - round((seconds - offset) / 10)) < 1e-6
        assert all(b - a == timedelta(seconds=10) for a, b in itertools.pairwise(slots))
    for request in requests:
        assert request.dispatched_at is not None
        assert (
            timedelta(0)
            <= request.dispatched_at - request.scheduled_at
            < timedelta(seconds=tick_seconds)
        )


def test_no_drift_over_many_periods(database_url: str) -> None:
    settings, Session = setup(database_url, checks_yaml(1, "1m"))
    sender = Recorder()
    # A slow, irregular dispatcher: ticks 1-5 s apart for three hours.
    now = T0
    step = 0
    while now < T0 + timedelta(hours=3):
        tick(Session, settings, sender, now)
        step += 1
        now += timedelta(seconds=1 + step % 5)
    slots = [r.scheduled_at for r in sender.requests()]
    assert len(slots) == 180
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(slots))


def test_a_long_outage_means_one_run_not_a_burst(database_url: str) -> None:
    settings, Session = setup(database_url, checks_yaml(3, "10s"))
    sender = Recorder()
    tick(Session, settings, sender, T0 + timedelta(seconds=10))
    before = len(sender.sent)
    tick(Session, settings, sender, T0 + timedelta(minutes=30))
    assert len(sender.sent) - before == 3


def test_parallel_and_round_robin_fan_out(database_url: str) -> None:
    text = yaml.safe_dump(
        {
            "checks": [
                {
                    "id": "par",
                    "type": "http",
                    "frequency": "10s",
                    "locations": ["eu-west-1", "us-east-1"],
                    "request": {"url": "https://x.example"},
                },
                {
                    "id": "rr",
                    "type": "http",
                    "frequency": "10s",
                    "run_mode": "round-robin",
                    "locations": ["eu-west-1", "us-east-1"],
                    "request": {"url": "https://x.example"},
                },
            ]
        }
    )
    settings, Session = setup(database_url, text)
    sender = Recorder()
    for step in range(0, 40, 2):
        tick(Session, settings, sender, T0 + timedelta(seconds=step))
    requests = sender.requests()
    parallel = [r.location for r in requests if r.check_id == "par"]
    rr = [r.location for r in requests if r.check_id == "rr"]
    assert parallel.count("eu-west-1") == parallel.count("us-east-1") >= 3
    assert all(a != b for a, b in itertools.pairwise(rr)) and len(rr) >= 3
    queues = {m.queue for m in sender.sent}
    assert queues == {"synmon-test-run-eu-west-1-http", "synmon-test-run-us-east-1-http"}


def test_a_failed_send_sends_the_same_slot_again(database_url: str) -> None:
    settings, Session = setup(database_url, checks_yaml(2, "10s"))
    failing = Recorder(fail=True)
    with pytest.raises(ConnectionError):
        tick(Session, settings, failing, T0 + timedelta(seconds=11))
    sender = Recorder()
    tick(Session, settings, sender, T0 + timedelta(seconds=12))
    retried = sender.requests()
    assert len(retried) == 2
    # Dispatched again after the failure: same slot, same run id, so at most one result.
    tick(Session, settings, sender, T0 + timedelta(seconds=13))
    assert len(sender.requests()) == 2


def test_many_checks_go_out_in_batches_of_ten(database_url: str) -> None:
    settings, Session = setup(database_url, checks_yaml(250, "10s"))
    sender = Recorder()
    tick(Session, settings, sender, T0 + timedelta(seconds=10))
    assert len(sender.sent) == 250


def test_two_dispatchers_never_double_schedule(postgres_url: str) -> None:
    settings, Session = setup(postgres_url, checks_yaml(300, "10s"))
    settings = settings.with_overrides(dispatch_batch_size=25)
    sender = Recorder(delay=0.02)
    errors: list[BaseException] = []

    def dispatcher() -> None:
        try:
            for step in range(0, 40, 2):
                tick(Session, settings, sender, T0 + timedelta(seconds=step))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    run_ids = [r.run_id for r in sender.requests()]
    assert len(run_ids) == len(set(run_ids)), "two dispatchers sent the same slot"
    slots = {(r.check_id, r.scheduled_at) for r in sender.requests()}
    # Each of the 300 checks has 3 or 4 slots due in [0, 38] s.
    assert len(slots) == len(run_ids)
    per_check: dict[str, int] = {}
    for check_id, _ in slots:
        per_check[check_id] = per_check.get(check_id, 0) + 1
    assert len(per_check) == 300 and set(per_check.values()) <= {3, 4}


def test_a_removed_check_stops_running(database_url: str, tmp_path: Path) -> None:
    settings, Session = setup(database_url, checks_yaml(2, "10s"))
    sender = Recorder()
    tick(Session, settings, sender, T0 + timedelta(seconds=10))
    assert {r.check_id for r in sender.requests()} == {"c0", "c1"}
    with Session() as session:
        sync(session, load_text(checks_yaml(1, "10s"), "c.yaml", settings))
    sender.sent.clear()
    for step in range(12, 60, 2):
        tick(Session, settings, sender, T0 + timedelta(seconds=step))
    assert {r.check_id for r in sender.requests()} == {"c0"}

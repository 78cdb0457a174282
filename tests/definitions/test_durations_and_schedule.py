from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.definitions.durations import format_duration, parse_duration
from app.pipeline.schedule import advance, first_run_after, phase


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10s", 10), ("5m", 300), ("1h", 3600), ("1.5s", 1.5), (30, 30), (0.25, 0.25)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["10", "10 sec", "-5s", "1d", "", "ms", True, None, [1], "1e3s"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_format_duration_round_trips() -> None:
    for text in ("500ms", "10s", "5m", "1h"):
        assert format_duration(parse_duration(text)) == text


def test_first_runs_spread_over_the_period() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    offsets = [
        (first_run_after(f"check-{i}", 60, now) - now).total_seconds() for i in range(10_000)
    ]
    assert all(0 < o <= 60 for o in offsets)
    buckets = [0] * 60
    for offset in offsets:
        buckets[min(59, int(offset))] += 1
    # 10,000 checks over 60 seconds: about 167 a second, never a stampede.
    assert max(buckets) < 250 and min(buckets) > 90


@given(st.integers(min_value=10, max_value=86_400), st.integers(min_value=0, max_value=10**7))
def test_first_run_is_on_the_lattice_and_within_one_period(frequency: int, seconds: int) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    first = first_run_after("x", frequency, now)
    assert now < first <= now + timedelta(seconds=frequency)
    assert first == first_run_after("x", frequency, first - timedelta(microseconds=1000))
    assert 0 <= phase("x", frequency) < frequency


def test_advance_does_not_drift_and_does_not_burst() -> None:
    slot = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    # Dispatched 1.7 s late: runs this slot, next slot stays on the lattice.
    run, following = advance(slot, 60, slot + timedelta(seconds=1.7))
    assert run == slot and following == slot + timedelta(seconds=60)
    # Down for 10 minutes: one run at the latest missed slot, not ten.
    run, following = advance(slot, 60, slot + timedelta(minutes=10, seconds=5))
    assert run == slot + timedelta(minutes=10)
    assert following == slot + timedelta(minutes=11)

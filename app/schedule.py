"""When a check runs: each check has a fixed lattice of run times, ``phase + k * frequency``.

The phase comes from a hash of the check's id, so 10,000 checks created in the same
second with the same frequency spread evenly over the period, and re-syncing a check
never moves it. Advancing stays on the lattice, so there is no drift, and a check
that missed several slots (dispatcher down) runs once, at the latest missed slot.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def phase(check_id: str, frequency: float) -> float:
    """Seconds into each period at which ``check_id`` runs, in [0, frequency)."""
    digest = int.from_bytes(hashlib.sha256(check_id.encode()).digest()[:8], "big")
    return (digest / 2**64) * frequency


def first_run_after(check_id: str, frequency: float, now: datetime) -> datetime:
    """The first slot of the check's lattice strictly after ``now``."""
    elapsed = (now - EPOCH).total_seconds() - phase(check_id, frequency)
    k = math.floor(elapsed / frequency) + 1
    return EPOCH + timedelta(seconds=phase(check_id, frequency) + k * frequency)


def advance(slot: datetime, frequency: float, now: datetime) -> tuple[datetime, datetime]:
    """``(slot_to_run, next_slot)`` for a due check whose next slot was ``slot``.

    When several slots were missed, the latest one that is due is run and the others
    are skipped: monitoring wants the present state, not a burst of stale runs.
    """
    missed = max(0, math.floor((now - slot).total_seconds() / frequency))
    run_slot = slot + timedelta(seconds=missed * frequency)
    return run_slot, run_slot + timedelta(seconds=frequency)

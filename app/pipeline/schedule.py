"""When a check runs, and under which run id.

Each check has a fixed lattice of run times, ``phase + k * frequency``.

The phase comes from a hash of the check's id, so 10,000 checks created in the same
second with the same frequency spread evenly over the period, and re-syncing a check
never moves it. Advancing stays on the lattice, so there is no drift, and a check
that missed several slots (dispatcher down) runs once, at the latest missed slot.
"""

from __future__ import annotations

import hashlib
import math
import uuid
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


# A run's id depends only on what it runs, so that sending it twice stores it once.
RUN_ID_NAMESPACE = uuid.UUID("6f1c2c1e-5b7a-4e0c-9a57-2a1f3f0e9b11")


def scheduled_run_id(check_id: str, location: str, slot: datetime) -> uuid.UUID:
    """The same scheduled slot always gets the same run id.

    A dispatcher that crashes after sending and before committing sends the slot
    again; ingest then sees the second result under the same run id and drops it.
    """
    return uuid.uuid5(RUN_ID_NAMESPACE, f"{check_id}|{location}|{slot.astimezone(UTC).isoformat()}")


_NAMESPACE_BYTES = RUN_ID_NAMESPACE.bytes


def slot_text(slot: datetime) -> str:
    """A slot as run ids and messages write it: ISO 8601 in UTC."""
    return slot.astimezone(UTC).isoformat()


def scheduled_run_id_text(check_id: str, location: str, slot_iso: str) -> str:
    """``str(scheduled_run_id(...))`` for a slot already written by ``slot_text``, without
    building a ``UUID``: the dispatcher computes thousands a second, and the object was
    most of the cost. The same digest and bits as ``uuid.uuid5``."""
    name = f"{check_id}|{location}|{slot_iso}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def retry_run_id(root_run_id: uuid.UUID, attempt: int) -> uuid.UUID:
    return uuid.uuid5(RUN_ID_NAMESPACE, f"retry|{root_run_id}|{attempt}")

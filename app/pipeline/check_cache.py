"""The checks ingest decides with, validated once and looked up again only now and then.

Validating a stored definition costs more than storing a result, and asking Postgres
for the current version of every check of every batch cost a tenth of ingest. So a
check is taken as current for ``FRESH_SECONDS`` after its version was last read: a
changed definition (new alert channels, another retry policy) governs the results that
ingest stores at most that long after ``synmon sync`` committed it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.definitions.models import Check
from app.storage.bulk import one_of
from app.storage.models import CheckRow

log = logging.getLogger("synmon.ingest")


@dataclass
class _Entry:
    digest: str  # definition_hash of the definition ``check`` was validated from
    check: Check | None  # None: the stored definition no longer validates
    read_at: float  # when its version was last read from the database


class CheckCache:
    """Validated checks by id, bounded at ``MAX_CHECKS`` (a validated check takes about
    4 KB): past it, the oldest tenth is forgotten, so a fleet larger than the bound still
    hits the cache for most results instead of starting from empty."""

    MAX_CHECKS = 200_000
    FRESH_SECONDS = 5.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[str, _Entry] = {}
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def load(self, session: Session, check_ids: Collection[str]) -> dict[str, Check]:
        """The current definitions of ``check_ids``; checks that no longer exist are left out."""
        now = self._clock()
        stale = [
            check_id
            for check_id in check_ids
            if (entry := self._entries.get(check_id)) is None
            or now - entry.read_at > self.FRESH_SECONDS
        ]
        if stale:
            self._refresh(session, stale, now)
        found = (self._entries.get(check_id) for check_id in check_ids)
        return {entry.check.id: entry.check for entry in found if entry and entry.check}

    def _refresh(self, session: Session, check_ids: list[str], now: float) -> None:
        versions = dict(
            session.execute(
                select(CheckRow.id, CheckRow.definition_hash).where(
                    one_of(session, CheckRow.id, check_ids)
                )
            ).all()
        )
        changed = []
        for check_id in check_ids:
            entry = self._entries.get(check_id)
            if check_id not in versions:
                self._entries.pop(check_id, None)  # removed by a sync
            elif entry is not None and entry.digest == versions[check_id]:
                entry.read_at = now
            else:
                changed.append(check_id)
        if not changed:
            return
        self._make_room(len(changed))
        for check_id, digest, definition in session.execute(
            select(CheckRow.id, CheckRow.definition_hash, CheckRow.definition).where(
                one_of(session, CheckRow.id, changed)
            )
        ):
            try:
                check: Check | None = Check.model_validate(definition)
            except ValidationError:
                log.error("stored definition of %s no longer validates", check_id)
                check = None
            self._entries[check_id] = _Entry(digest, check, now)

    def _make_room(self, coming: int) -> None:
        if len(self._entries) + coming > self.MAX_CHECKS:
            for check_id in list(self._entries)[: coming + self.MAX_CHECKS // 10]:
                del self._entries[check_id]

"""A paused check (from the web or the API) is not dispatched; resumed, it starts at its
next slot, not with a burst of the ones it missed."""

from __future__ import annotations

from datetime import timedelta

from app.storage.accounts import CheckPauseRow
from tests.pipeline.test_dispatch import Recorder, setup, tick
from tests.support.dispatching import T0, checks_yaml


def test_a_paused_check_is_skipped_and_resumes_at_its_next_slot(database_url: str) -> None:
    settings, Session = setup(database_url, checks_yaml(3, "10s"))
    with Session.begin() as session:
        session.add(CheckPauseRow(check_id="c1", paused_by="editor"))
    sender = Recorder()
    for step in range(0, 60, 2):
        tick(Session, settings, sender, T0 + timedelta(seconds=step))
    ran = {request.check_id for request in sender.requests()}
    assert ran == {"c0", "c2"}
    with Session.begin() as session:
        session.delete(session.get(CheckPauseRow, "c1"))
    resumed = T0 + timedelta(seconds=60)
    before = len(sender.sent)
    for step in range(0, 10, 2):
        tick(Session, settings, sender, resumed + timedelta(seconds=step))
    slots = [r.scheduled_at for r in sender.requests()[before:] if r.check_id == "c1"]
    # One run: the slot due when it was resumed (no more than a period before), none of the
    # five it missed while paused.
    assert len(slots) == 1 and resumed - timedelta(seconds=10) < slots[0] <= resumed

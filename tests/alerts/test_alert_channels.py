"""Every channel type a definition may name has a notifier, and a notifier's error says
whether sending again could help."""

from __future__ import annotations

from typing import get_args

from app.alerts.channels import NOTIFIERS, NotifierError, NotifierUnavailable
from app.definitions.models import Channel
from config.errors import RetryableError, SynmonError


def test_each_channel_type_has_a_notifier() -> None:
    assert set(NOTIFIERS) == set(get_args(Channel.model_fields["type"].annotation))
    assert all(notifier.kind == kind for kind, notifier in NOTIFIERS.items())


def test_a_refusal_is_permanent_and_an_outage_is_not() -> None:
    refused, unavailable = NotifierError("refused (404)"), NotifierUnavailable("answered 503")
    assert isinstance(refused, SynmonError) and refused.permanent
    assert isinstance(unavailable, NotifierError) and isinstance(unavailable, RetryableError)
    assert not unavailable.permanent

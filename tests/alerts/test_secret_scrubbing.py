"""A channel's secret never reaches a stored error, even when the answer that echoes it
is cut, or echoes it URL-encoded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.alerts.support import monitored
from tests.support.servers import TargetServer, http_target

TOKEN = "s3cr3t-T0KEN/with+chars=" + "k" * 24


@pytest.fixture
def hooks() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


@pytest.mark.parametrize("pad", [0, 280, 295])
def test_an_echoed_secret_is_scrubbed_before_the_answer_is_cut(
    database_url: str, hooks: TargetServer, pad: int
) -> None:
    channel = {
        "id": "hook",
        "type": "webhook",
        "url": hooks.url(f"/refuse?pad={pad}"),
        "headers": {"Authorization": "Bearer {{HOOK_TOKEN}}"},
    }
    check = monitored(database_url, [channel], [hooks.port], SYNMON_VAR_HOOK_TOKEN=TOKEN)
    check.run("failed")
    check.send()
    (notification,) = check.notifications()
    assert notification.status == "failed"
    error = notification.last_error or ""
    assert "refused the notification (400)" in error
    # Neither the secret nor any 8 characters of it, as sent or URL-encoded.
    for sent in (TOKEN, "s3cr3t-T0KEN%2Fwith%2Bchars"):
        assert not any(sent[i : i + 8] in error for i in range(len(sent) - 7)), error
    # The echoed header was there to scrub (the server got the token).
    assert any(TOKEN in str(hit["headers"].get("Authorization")) for hit in hooks.hits)

"""Channel definitions: each type takes its own fields, secrets are written as
``{{NAME}}`` placeholders and stored so, a webhook template is checked when it is
loaded, and channels defined before these types are stored exactly as they were."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from sqlalchemy import select

from app.definitions.loader import DefinitionError, load_text
from app.pipeline.sync import sync
from app.storage.db import sessions
from app.storage.models import ChannelRow


def load(*channels: dict[str, Any]) -> list[Any]:
    return load_text(yaml.safe_dump({"channels": list(channels)}), "channels.yaml").channels


def problems(*channels: dict[str, Any]) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load(*channels)
    return [str(problem) for problem in caught.value.problems]


def test_every_new_type_loads() -> None:
    loaded = load(
        {"id": "pd", "type": "pagerduty", "routing_key": "{{PD_KEY}}", "severity": "error"},
        {
            "id": "genie",
            "type": "opsgenie",
            "api_key": "{{ GENIE }}",
            "url": "https://api.eu.opsgenie.com",
        },
        {
            "id": "teams",
            "type": "teams",
            "url": "https://example.webhook.office.com/{{TEAMS_PATH}}",
        },
        {"id": "discord", "type": "apprise", "url": "discord://{{DISCORD_ID}}/{{DISCORD_TOKEN}}"},
        {"id": "mine", "type": "apprise", "url": "json://hooks.example.com/synmon"},
        {
            "id": "hook",
            "type": "webhook",
            "url": "https://h.example/x",
            "template": '{"t": {{ text|tojson }}}',
        },
    )
    assert [channel.type for channel in loaded] == [
        "pagerduty",
        "opsgenie",
        "teams",
        "apprise",
        "apprise",
        "webhook",
    ]


def test_a_secret_in_clear_is_refused_with_the_channel_and_field() -> None:
    found = problems(
        {"id": "pd", "type": "pagerduty", "routing_key": "R0UT1NGKEY0123456789abcdef012345"},
        {"id": "genie", "type": "opsgenie", "api_key": "prefix-{{KEY}}"},
        {"id": "discord", "type": "apprise", "url": "discord://1234/s3cr3t-token"},
        {"id": "own", "type": "apprise", "url": "jsons://user:hunter2@hooks.example.com/x"},
        {"id": "teams", "type": "teams", "url": "https://x.logic.azure.com/workflows/1?sig=abc"},
    )
    assert any(
        p.startswith("channels.yaml: channel 'pd': routing_key: ") and "placeholder" in p
        for p in found
    )
    assert any(p.startswith("channels.yaml: channel 'genie': api_key: ") for p in found)
    assert any(
        p.startswith(
            "channels.yaml: channel 'discord': url: a discord:// URL holds the service's token"
        )
        for p in found
    )
    assert any("channel 'own': url: the password in this URL is a secret" in p for p in found)
    assert any("channel 'teams': url: a Teams webhook URL is a secret" in p for p in found)
    assert len(found) == 5


def test_required_and_foreign_fields() -> None:
    found = problems(
        {"id": "pd", "type": "pagerduty"},
        {"id": "genie", "type": "opsgenie", "api_key": "{{K}}", "severity": "critical"},
        {"id": "teams", "type": "teams"},
        {"id": "ap", "type": "apprise", "url": "not a url"},
        {"id": "slack", "type": "slack", "url": "https://h.example/x", "template": "{{ text }}"},
        {"id": "mail", "type": "email", "to": ["a@example.com"], "priority": "P1"},
    )
    text = "\n".join(found)
    assert "channel 'pd'" in text and "needs 'routing_key'" in text
    assert "an opsgenie channel takes no 'severity'" in text
    assert "a teams channel needs a url" in text
    assert "an Apprise URL is written scheme://" in text
    assert "a slack channel takes no 'template'" in text
    assert "an email channel takes no 'priority'" in text


def test_an_invalid_template_is_refused_at_load_with_its_line() -> None:
    (problem,) = problems(
        {
            "id": "hook",
            "type": "webhook",
            "url": "https://h.example/x",
            "template": '{\n  "a": {{ text }\n}',
        }
    )
    assert problem.startswith(
        "channels.yaml: channel 'hook': template: invalid Jinja2 template, line 2"
    )


def test_a_template_has_a_size_limit() -> None:
    (problem,) = problems(
        {"id": "hook", "type": "webhook", "url": "https://h.example/x", "template": "x" * 20000}
    )
    assert "channel 'hook': template:" in problem and "16,384 characters at most" in problem


def test_channels_are_stored_with_their_placeholders_and_old_ones_unchanged(
    database_url: str,
) -> None:
    text = yaml.safe_dump(
        {
            "channels": [
                {"id": "hook", "type": "webhook", "url": "https://h.example/{{HOOK_PATH}}"},
                {"id": "pd", "type": "pagerduty", "routing_key": "{{PD_KEY}}"},
            ]
        }
    )
    Session = sessions(database_url)
    with Session() as session:
        sync(session, load_text(text, "c.yaml"))
    with Session() as session:
        stored = {row.id: row.config for row in session.scalars(select(ChannelRow))}
        # The shape a webhook channel had before the new types: a sync after an upgrade
        # finds nothing to change.
        assert stored["hook"] == {"url": "https://h.example/{{HOOK_PATH}}", "headers": {}, "to": []}
        assert stored["pd"]["routing_key"] == "{{PD_KEY}}"
    with Session() as session:
        assert sync(session, load_text(text, "c.yaml")).empty

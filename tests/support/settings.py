"""Settings for a test: the embedded defaults of the ``test`` environment, two locations."""

from __future__ import annotations

from config.settings import Settings, load_settings


def make_settings(**env: str) -> Settings:
    """Settings from ``env`` (``SYNMON_*`` variables) over a test installation's base."""
    base = {"SYNMON_ENV": "test", "SYNMON_LOCATIONS": "eu-west-1,us-east-1"}
    return load_settings({**base, **env})

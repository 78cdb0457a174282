"""Check definitions as YAML documents hold them, for the loader's tests."""

from __future__ import annotations


def http_check(**overrides: object) -> dict[str, object]:
    """A valid HTTP check's mapping, ``overrides`` replacing or adding top-level fields."""
    check: dict[str, object] = {
        "id": "api",
        "type": "http",
        "frequency": "60s",
        "locations": ["eu-west-1"],
        "request": {"url": "https://api.example.com/health"},
    }
    check.update(overrides)
    return check

"""What the dispatcher's tests schedule: a fixed start instant and generated checks files."""

from __future__ import annotations

from datetime import UTC, datetime

import yaml

# A fixed instant, so that slots and phases are the same on every run.
T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def checks_yaml(
    count: int,
    frequency: str = "10s",
    run_mode: str = "parallel",
    locations: list[str] | None = None,
) -> str:
    """A checks file of ``count`` HTTP checks ``c0``, ``c1``, ... with the same schedule."""
    return yaml.safe_dump(
        {
            "checks": [
                {
                    "id": f"c{i}",
                    "type": "http",
                    "frequency": frequency,
                    "run_mode": run_mode,
                    "locations": locations or ["eu-west-1"],
                    "request": {"url": f"https://x.example/{i}"},
                }
                for i in range(count)
            ]
        }
    )

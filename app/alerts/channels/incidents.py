"""What the channels that deduplicate (PagerDuty, Opsgenie) key an event by.

Each notification names its incident (``payload["incident"]``, filled in by the
sender): its failure and its recovery carry the same ``key``, so such a channel opens
one alert and resolves that one. Two events have no incident: a degraded one (a
check that is slow but not failing) and the recovery of an alert that a release
before incidents opened. Those are keyed by the check, so that repeated degraded
notices update one alert instead of opening many, and such a recovery resolves the
alert a failure without an incident would have opened.
"""

from __future__ import annotations

from typing import Any


def incident_key(payload: dict[str, Any]) -> str:
    incident = payload.get("incident")
    if isinstance(incident, dict) and isinstance(incident.get("key"), str):
        return str(incident["key"])
    if payload["event"] == "degraded":
        return f"synmon:{payload['check_id']}:degraded"
    return f"synmon:{payload['check_id']}"


def closed_already(payload: dict[str, Any]) -> bool:
    """A failure sent after its incident closed (it waited for a retry while the check
    recovered): its channel must not be left with an open alert."""
    incident = payload.get("incident")
    return (
        payload["event"] == "failure"
        and isinstance(incident, dict)
        and bool(incident.get("closed_at"))
    )


def bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

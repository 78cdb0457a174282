"""Durations as check authors write them: ``500ms``, ``10s``, ``5m``, ``1h`` or plain seconds."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds as a float. Numbers are seconds; strings need a unit."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 10s, 5m or 1h, not a boolean")
    if isinstance(value, int | float):
        # float() of an int beyond 1e308 raises OverflowError, which pydantic does not
        # turn into a validation error: the loader would stop instead of reporting.
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration: write it as 500ms, 10s, 5m or 1h")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError("expected a duration such as 500ms, 10s, 5m or 1h")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be a finite number of seconds, zero or more")
    return seconds


def format_duration(seconds: float) -> str:
    for unit in ("h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(lambda s: s)]

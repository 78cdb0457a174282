"""Webhook bodies from a channel's Jinja2 template, rendered in Jinja's immutable sandbox,
in a process of its own.

A template is written by whoever defines the channel, and it is fed what targets
control (errors, response excerpts). The sandbox refuses attribute access to Python
internals and any method that mutates. What it does not bound is what a template
costs: ``{{ "x" * 10**9 }}``, a chain of ``{% set b = a ~ a %}`` or ``center(10**9)``
allocate gigabytes in one step, and nested loops that print nothing run forever. So
the render runs in a child process (``app.alerts.template_child``) with a memory
and a CPU limit, is killed at ``MAX_RENDER_SECONDS``, and its output is bounded
(``MAX_OUTPUT_CHARS``): a template that misbehaves fails its own notification, never
the sender. The syntax was checked when the definitions were loaded
(``app.definitions.models.Channel``); a template that fails here fails its
notification permanently, with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from app.alerts.channels.base import NotifierError
from app.alerts.template_child import EXCEEDED, MAX_OUTPUT_CHARS, MAX_RENDER_SECONDS

# The child's start (Python and jinja2), on top of rendering proper.
STARTUP_SECONDS = 4.0


def render(source: str, context: dict[str, Any], field: str = "template") -> str:
    """``source`` rendered with ``context``; ``NotifierError`` (permanent) naming ``field``
    when it cannot be, is too big or takes too long."""
    request = json.dumps({"template": source, "context": context}, default=str)
    try:
        finished = subprocess.run(
            [sys.executable, "-I", "-m", "app.alerts.template_child"],
            input=request.encode(),
            capture_output=True,
            timeout=MAX_RENDER_SECONDS + STARTUP_SECONDS,
            env={"PATH": os.defpath, "LANG": "C.UTF-8"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise NotifierError(f"{field}: {EXCEEDED}") from None
    try:
        answer = json.loads(finished.stdout[: MAX_OUTPUT_CHARS * 8] or b"null")
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        # Killed by its limits (SIGXCPU, or MemoryError that could not even be reported).
        if finished.returncode < 0 or b"MemoryError" in finished.stderr:
            raise NotifierError(f"{field}: {EXCEEDED}")
        raise NotifierError(f"{field}: the template could not be rendered")
    if "error" in answer:
        raise NotifierError(f"{field}: {answer['error']}")
    return str(answer["body"])

"""Webhook bodies from a channel's Jinja2 template, rendered in Jinja's immutable sandbox.

A template is written by whoever defines the channel, and it is fed what targets
control (errors, response excerpts): the sandbox refuses attribute access to Python
internals and any method that mutates, the output is bounded (``MAX_OUTPUT_CHARS``),
and so is the time a render may take (``MAX_RENDER_SECONDS``): a template made of
nested loops that print nothing would otherwise hold the sender forever, which no
output bound catches. The syntax was checked when the definitions were loaded
(``app.definitions.models.Channel``); a template that fails here fails its
notification permanently, with the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import lru_cache
from time import perf_counter
from types import FrameType
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.alerts.channels.base import NotifierError

MAX_OUTPUT_CHARS = 256 * 1024
MAX_RENDER_SECONDS = 1.0
# Jinja compiles each template to Python code under this file name.
_TEMPLATE_FILE = "<template>"


class TemplateBudgetExceeded(Exception):
    pass


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    # autoescape off: a body is JSON or text, not HTML (``tojson`` quotes a value for JSON).
    return ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=128)
def compiled(source: str) -> Template:
    return environment().from_string(source)


def render(source: str, context: dict[str, Any], field: str = "template") -> str:
    """``source`` rendered with ``context``; ``NotifierError`` (permanent) naming ``field``
    when it cannot be, is too big or takes too long."""
    try:
        template = compiled(source)
    except TemplateError as exc:
        raise NotifierError(f"{field}: invalid template: {exc}") from None
    deadline = perf_counter() + MAX_RENDER_SECONDS
    parts: list[str] = []
    size = 0
    try:
        with TimeBudget(deadline):
            for chunk in template.generate(**context):
                size += len(chunk)
                if size > MAX_OUTPUT_CHARS:
                    raise NotifierError(
                        f"{field}: the template's output exceeds {MAX_OUTPUT_CHARS:,} characters"
                    )
                parts.append(chunk)
    except TemplateBudgetExceeded:
        raise NotifierError(
            f"{field}: the template took longer than {MAX_RENDER_SECONDS:g}s to render"
        ) from None
    except SecurityError as exc:
        raise NotifierError(f"{field}: refused by the template sandbox: {exc}") from None
    except NotifierError:
        raise
    except Exception as exc:  # noqa: BLE001 - a template's own error (1/0, a bad filter)
        raise NotifierError(f"{field}: the template failed: {type(exc).__name__}: {exc}") from None
    return "".join(parts)


class TimeBudget:
    """Trace the template's own frames and stop them at ``deadline``.

    Only frames of the compiled template are traced line by line (the rest of the
    thread runs at full speed); the tracer that was there before comes back after.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.lines = 0
        self.previous: Callable[..., Any] | None = None

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self.lines += 1
            if self.lines % 256 == 0 and perf_counter() > self.deadline:
                raise TemplateBudgetExceeded
        return self._local

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename == _TEMPLATE_FILE:
            return self._local
        return None

    def __enter__(self) -> TimeBudget:
        self.previous = sys.gettrace()
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self.previous)

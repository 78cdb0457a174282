"""Regular expressions a check author writes, compiled by a linear-time engine.

A pattern comes from a definition and the text it searches from a target: with a
backtracking engine either can hang a worker. RE2 guarantees time linear in the text,
and refuses what it cannot do in linear time (backreferences, lookaround).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

from config.errors import SynmonError

# A pattern's compiled program is bounded too: a hostile definition cannot make a
# worker build a huge automaton.
_OPTIONS = re2.Options()
_OPTIONS.max_mem = 8 << 20
_OPTIONS.log_errors = False


class PatternError(SynmonError, ValueError):
    """A pattern RE2 cannot compile; the message says why."""


@lru_cache(maxsize=4096)
def compile_pattern(text: str) -> Any:
    """The compiled form of ``text``; ``PatternError`` if it is not a valid RE2 pattern."""
    try:
        return re2.compile(text, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"not a valid regular expression (RE2 syntax): {reason}") from None


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` occurs anywhere in ``text``."""
    return compile_pattern(pattern).search(text) is not None

"""Removing secret values from anything synmon stores, sends or logs."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
# Very short values would redact ordinary words; they are not secrets worth the name.
MIN_SECRET_LENGTH = 4


def _forms(secret: str) -> set[str]:
    """A secret as it may appear on the wire: as is, URL-encoded, base64-encoded."""
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(secret.encode()).decode(),
    }


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {form for s in secrets if len(s) >= MIN_SECRET_LENGTH for form in _forms(s)}
        values = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def text(self, value: str) -> str:
        if self._pattern is None:
            return value
        return self._pattern.sub(REDACTED, value)

    def value(self, value: Any) -> Any:
        """``value`` with every secret replaced, recursively through dicts and lists."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


@lru_cache(maxsize=1024)
def redactor_for(secrets: frozenset[str]) -> Redactor:
    """A compiled redactor per set of secrets: runs of the same check reuse theirs."""
    return Redactor(secrets)

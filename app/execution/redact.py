"""Removing secret values from anything synmon stores, sends or logs.

A secret reaches a result in whatever form the target echoes it: as is, percent-encoded
(path or query form, upper- or lower-case hex), JSON-escaped, HTML-escaped, quoted as
Python quotes it in an exception's text, base64 on
its own or inside a longer base64 text (``Authorization: Basic base64(user:secret)``,
whatever the user). Every one of those forms is replaced by ``[REDACTED]``.

Redaction must come before any cut: a secret cut in half by a length limit would no
longer match and its first half would be stored. ``Redactor.cut`` is the one way to
shorten a text that may hold a secret.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

import re2

REDACTED = "[REDACTED]"
# Very short values would redact ordinary words; they are not secrets worth the name.
MIN_SECRET_LENGTH = 4
# The shortest piece of a secret's base64 inside a longer base64 text worth matching:
# shorter ones would hit ordinary base64 by chance.
MIN_EMBEDDED_BASE64 = 8
# The shortest start of a secret masked at the end of a text that was cut before
# synmon saw it (a body read up to its size limit).
MIN_CUT_PREFIX = 3
_PERCENT_HEX = re.compile(r"%[0-9A-F]{2}")
_JSON_HEX = re.compile(r"\\u[0-9a-f]{4}")
_HTML_QUOTES = {'"': ("&quot;", "&#34;", "&#x22;"), "'": ("&#x27;", "&#39;", "&apos;")}


def _percent_forms(secret: str) -> set[str]:
    encoded = {
        quote(secret, safe=""),  # a path segment or a query value, strictly encoded
        quote(secret, safe="/"),  # a path (urllib's default)
        quote(secret, safe="/:@!$&'()*+,;=-._~"),  # a path as browsers leave it (RFC 3986 pchar)
        quote_plus(secret),  # a form-encoded query value
        quote_plus(secret, safe="/"),
    }
    lower = {_PERCENT_HEX.sub(lambda m: m.group(0).lower(), form) for form in encoded}
    return encoded | lower


def _json_forms(secret: str) -> set[str]:
    forms = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms |= {_JSON_HEX.sub(lambda m: m.group(0).upper().replace("\\U", "\\u"), f) for f in forms}
    return forms | {form.replace("/", "\\/") for form in forms}  # PHP escapes slashes


def _html_forms(secret: str) -> set[str]:
    plain = html.escape(secret, quote=False)
    quotes = [q for q in _HTML_QUOTES if q in plain]
    forms = {plain}
    for choice in itertools.product(*(_HTML_QUOTES[q] for q in quotes)):
        form = plain
        for quote_char, entity in zip(quotes, choice, strict=True):
            form = form.replace(quote_char, entity)
        forms.add(form)
    return forms


def _repr_forms(secret: str) -> set[str]:
    """As Python quotes it in an exception's text (``BadStatusLine('...')``)."""
    escaped = repr(secret)[1:-1]
    backslashed = secret.replace("\\", "\\\\")
    return {escaped, backslashed.replace("'", "\\'"), backslashed.replace('"', '\\"')}


def _base64_forms(secret: str) -> set[str]:
    """The secret's base64 alone, and the part of it that is the same wherever it sits
    inside a longer base64 text (one per alignment: 0, 1 or 2 bytes before it)."""
    raw = secret.encode()
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        forms |= {whole, whole.rstrip("=")}
        for shift in range(3):
            text = encode(b"\0" * shift + raw).decode()
            # Characters that depend on nothing but the secret's own bytes.
            start = -(-shift * 8 // 6)
            end = (shift + len(raw)) * 8 // 6
            core = text[start:end]
            if len(core) >= MIN_EMBEDDED_BASE64:
                forms.add(core)
    return forms


def forms_of(secret: str) -> set[str]:
    """Every form in which ``secret`` is redacted."""
    forms = {secret, *_percent_forms(secret), *_json_forms(secret), *_html_forms(secret)}
    forms |= _repr_forms(secret)
    forms |= _base64_forms(secret)
    return {form for form in forms if form}


# Bodies of a megabyte pass through the redactor on every run: RE2 matches all forms of
# all secrets in one linear pass, several times faster than ``re`` on such a list.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.max_mem = 64 << 20
_RE2_OPTIONS.log_errors = False


def _compile(forms: list[str]) -> Any:
    """One pattern matching any of ``forms``, longest first."""
    try:
        return re2.compile("|".join(re2.escape(form) for form in forms), options=_RE2_OPTIONS)
    except re2.error:  # more secrets than RE2's memory bound: slower, but still correct
        return re.compile("|".join(re.escape(form) for form in forms))


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {form for s in secrets if len(s) >= MIN_SECRET_LENGTH for form in forms_of(s)}
        self._forms = sorted(forms, key=len, reverse=True)
        self._pattern = _compile(self._forms) if self._forms else None

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def text(self, value: str) -> str:
        if self._pattern is None:
            return value
        return str(self._pattern.sub(REDACTED, value))

    def cut(self, value: str, limit: int, already_cut: bool = False) -> str:
        """``value`` redacted, then shortened to ``limit`` characters.

        ``already_cut``: ``value`` itself ended at a limit (a body read up to its size
        limit), so a secret may begin at its very end; that beginning is masked too.
        """
        redacted = self.text(value)
        if already_cut and len(redacted) <= limit:
            redacted = self._mask_cut_end(redacted)
        return redacted[:limit]

    def _mask_cut_end(self, value: str) -> str:
        # A cut inside a multi-byte character decodes to U+FFFD after the secret's start.
        kept = value.rstrip("\ufffd")
        for form in self._forms:
            for length in range(len(form) - 1, MIN_CUT_PREFIX - 1, -1):
                if kept.endswith(form[:length]):
                    return kept[:-length] + REDACTED
        return value

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

"""``{{NAME}}`` placeholders in check definitions, filled in on the worker at run time.

Values come from the worker's ``SYNMON_VAR_NAME`` (secret) and ``SYNMON_PUBLIC_VAR_NAME``
(plain) environment variables, read by ``config``, never from the rest of the
environment: a check author must not be able to read ``AWS_SECRET_ACCESS_KEY`` by
writing ``{{AWS_SECRET_ACCESS_KEY}}`` into a URL. The secret values a run used are
collected, so that the result can be scrubbed of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.definitions.models import PLACEHOLDER_RE
from config.errors import SynmonError


class UndefinedVariable(SynmonError, LookupError):
    """A placeholder without a value on this worker: permanent until its variable is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"placeholder {{{{{name}}}}} has no value: set SYNMON_VAR_{name} "
            f"(or SYNMON_PUBLIC_VAR_{name}) on the workers"
        )


class Placeholders:
    """Fills placeholders and remembers which secret values it used."""

    def __init__(self, secrets: Mapping[str, str], public: Mapping[str, str] | None = None) -> None:
        self.secrets = secrets
        self.public = public or {}
        self.used: set[str] = set()

    def text(self, template: str) -> str:
        if "{{" not in template:
            return template

        def substitute(match: Any) -> str:
            name = match.group(1)
            if name in self.secrets:
                value = self.secrets[name]
                self.used.add(value)
                return value
            if name in self.public:
                return self.public[name]
            raise UndefinedVariable(name)

        return PLACEHOLDER_RE.sub(substitute, template)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value

"""Loading check and channel definitions from YAML files.

All problems of all files are collected before anything is applied, and each names
the file, the check (or channel) and the field, so that a user fixes them in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app.checks.durations import format_duration
from app.checks.models import DEFAULT_MIN_FREQUENCY, Channel, Check
from config.settings import Settings

YAML_SUFFIXES = (".yaml", ".yml")
TOP_LEVEL_KEYS = ("channels", "checks")


@dataclass(frozen=True)
class Problem:
    file: str
    entity: str | None  # "check 'api-health'", "channel 'ops'", or None for the file
    field: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.entity:
            where.append(self.entity)
        if self.field:
            where.append(self.field)
        return f"{': '.join(where)}: {self.message}"


class DefinitionError(ValueError):
    """Definitions that cannot be applied; ``problems`` lists every one found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{len(problems)} problem(s) in the check definitions:\n{lines}")


@dataclass
class Definitions:
    checks: list[Check] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    # The file each check and channel came from, by position.
    check_files: list[str] = field(default_factory=list)
    channel_files: list[str] = field(default_factory=list)


def definition_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
    if path.is_file():
        return [path]
    raise DefinitionError([Problem(str(path), None, None, "no such file or folder")])


def _field_path(loc: Iterable[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _validation_problems(
    file: str, entity: str, error: ValidationError, prefix: str = ""
) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        # pydantic's own wrappers (union members, "function-after") add noise to the path
        loc = [
            p
            for p in item["loc"]
            if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
        ]
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        path = _field_path(loc)
        problems.append(
            Problem(file, entity, (prefix + path) if path else (prefix or None), message)
        )
    return problems


def _entity_name(kind: str, raw: Any, index: int) -> str:
    ident = raw.get("id") if isinstance(raw, Mapping) else None
    return f"{kind} {ident!r}" if isinstance(ident, str) and ident else f"{kind} #{index + 1}"


def parse_document(text: str, file: str, definitions: Definitions, problems: list[Problem]) -> None:
    """Validate one YAML document, adding its checks and channels to ``definitions``."""
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problems.append(Problem(file, None, None, f"not valid YAML: {line}{exc.problem}"))
        return
    except Exception as exc:  # noqa: BLE001 - PyYAML raises ValueError, RecursionError, ...
        problems.append(Problem(file, None, None, f"not valid YAML: {exc}"))
        return
    if document is None:
        return
    if not isinstance(document, dict):
        problems.append(
            Problem(file, None, None, "expected a mapping with 'checks' and/or 'channels'")
        )
        return
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            problems.append(Problem(file, None, str(key), "unknown top-level field"))
    for key, model, kind in (("channels", Channel, "channel"), ("checks", Check, "check")):
        entries = document.get(key) or []
        if not isinstance(entries, list):
            problems.append(Problem(file, None, key, "expected a list"))
            continue
        for index, raw in enumerate(entries):
            entity = _entity_name(kind, raw, index)
            if not isinstance(raw, dict):
                problems.append(Problem(file, entity, None, "expected a mapping"))
                continue
            if any(not isinstance(k, str) for k in raw):
                problems.append(Problem(file, entity, None, "field names must be strings"))
                continue
            try:
                parsed = model.model_validate(raw)
            except ValidationError as exc:
                problems.extend(_validation_problems(file, entity, exc))
                continue
            if isinstance(parsed, Check):
                definitions.checks.append(parsed)
                definitions.check_files.append(file)
            else:
                definitions.channels.append(parsed)
                definitions.channel_files.append(file)


def _cross_checks(
    definitions: Definitions, settings: Settings | None, problems: list[Problem]
) -> Definitions:
    """Rules that span entries or need the settings: ids, references, locations, limits."""
    groups = (
        ("channel", [c.id for c in definitions.channels], definitions.channel_files),
        ("check", [c.id for c in definitions.checks], definitions.check_files),
    )
    for kind, ids, item_files in groups:
        seen: dict[str, str] = {}
        for ident, file in zip(ids, item_files, strict=True):
            if ident in seen:
                problems.append(
                    Problem(
                        file,
                        f"{kind} {ident!r}",
                        "id",
                        f"duplicate id (also defined in {seen[ident]})",
                    )
                )
            else:
                seen[ident] = file
    channel_ids = {channel.id for channel in definitions.channels}
    floor = settings.min_frequency if settings is not None else DEFAULT_MIN_FREQUENCY
    resolved: list[Check] = []
    for check, file in zip(definitions.checks, definitions.check_files, strict=True):
        entity = f"check {check.id!r}"
        if check.frequency < floor:
            problems.append(
                Problem(
                    file, entity, "frequency", f"must be between {format_duration(floor)} and 24h"
                )
            )
        for index, channel_id in enumerate(check.alert.channels):
            if channel_id not in channel_ids:
                problems.append(
                    Problem(
                        file,
                        entity,
                        f"alert.channels[{index}]",
                        f"channel {channel_id!r} is not defined",
                    )
                )
        if settings is not None:
            for index, location in enumerate(check.locations):
                if location not in settings.locations:
                    problems.append(
                        Problem(
                            file,
                            entity,
                            f"locations[{index}]",
                            f"unknown location {location!r}; this installation runs "
                            f"{', '.join(settings.locations)} (SYNMON_LOCATIONS)",
                        )
                    )
            limit = (
                settings.http_max_timeout if check.type == "http" else settings.browser_max_timeout
            )
            if check.timeout > limit:
                path = "request.timeout" if check.type == "http" else "browser.timeout"
                problems.append(
                    Problem(
                        file, entity, path, f"exceeds this installation's maximum of {limit:g}s"
                    )
                )
        if settings is not None and not check.locations:
            resolved.append(check.model_copy(update={"locations": list(settings.locations)}))
        else:
            resolved.append(check)
    definitions.checks = resolved
    return definitions


def load_definitions(path: Path | str, settings: Settings | None = None) -> Definitions:
    """Every check and channel under ``path``; raises ``DefinitionError`` on any problem."""
    path = Path(path)
    definitions = Definitions()
    problems: list[Problem] = []
    for file in definition_files(path):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(file), None, None, f"cannot be read: {exc}"))
            continue
        parse_document(text, str(file), definitions, problems)
    _cross_checks(definitions, settings, problems)
    if problems:
        raise DefinitionError(problems)
    return definitions


def load_text(text: str, file: str = "<text>", settings: Settings | None = None) -> Definitions:
    """Validate one YAML document held in memory (tests, and the API)."""
    definitions = Definitions()
    problems: list[Problem] = []
    parse_document(text, file, definitions, problems)
    _cross_checks(definitions, settings, problems)
    if problems:
        raise DefinitionError(problems)
    return definitions

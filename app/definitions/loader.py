"""Loading check and channel definitions from YAML files.

All problems of all files are collected before anything is applied, and each names
the file, the check (or channel) and the field, so that a user fixes them in one pass.

Every limit is checked here, before anything reaches the database, so that
``synmon sync --dry-run`` and a real sync give the same verdict on SQLite and Postgres:
the size of a file, what its YAML aliases expand to, how deep it nests, the size of a
check's snapshot (it must fit one SQS message with its envelopes), and what Postgres
cannot store (NUL, lone surrogates, NaN and infinities).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml._yaml import CParser
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import Node
from yaml.resolver import Resolver

from app.definitions.durations import format_duration
from app.definitions.models import Channel, Check
from config.errors import SynmonError
from config.settings import Settings

YAML_SUFFIXES = (".yaml", ".yml")
TOP_LEVEL_KEYS = ("channels", "checks")

# ---------------------------------------------------------------- limits
# A definitions file: thousands of checks fit in 4 MiB; more belong in several files.
MAX_FILE_BYTES = 4 * 1024 * 1024
# Nodes of one document with its aliases expanded. A "billion laughs" document is a
# few hundred bytes whose aliases expand to 10^9 nodes: PyYAML shares the aliased
# objects, but validation and the JSON snapshot would walk every one of them.
MAX_YAML_NODES = 1_000_000
MAX_YAML_DEPTH = 64
# A check's snapshot rides in every run request; SQS takes a message of 256 KiB at
# most (1 MiB on AWS since 2025, not on every SQS-compatible server), and the run
# request is base64-encoded twice inside kombu's envelopes (``app/pipeline/sqs.py``), which
# leaves about 143 KiB for the snapshot: tests/support/snapshot_bound.py computes it
# from the message the dispatcher really builds, and a test holds this limit below it.
SQS_MAX_MESSAGE_BYTES = 256 * 1024
MAX_SNAPSHOT_BYTES = 128 * 1024
# checks.source_file is a VARCHAR(500) (app/storage/models.py).
MAX_SOURCE_FILE_CHARS = 500


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


class DefinitionError(SynmonError, ValueError):
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


class YAMLLimitError(yaml.MarkedYAMLError):
    """A document refused for its size or shape, not for its syntax."""


class BoundedComposer(Composer):
    """PyYAML's composer, counting the nodes each alias stands for as it goes.

    A document that would expand past ``MAX_YAML_NODES`` nodes, that nests deeper
    than ``MAX_YAML_DEPTH`` or whose alias refers to a node that contains it, is
    refused while it is composed, before anything is built from it.
    """

    # Provided by the parser it is mixed with (``BoundedLoader``).
    check_event: Callable[..., bool]
    peek_event: Callable[[], Any]

    def __init__(self) -> None:
        super().__init__()
        self.expanded_nodes = 0
        self.depth = 0
        self.node_sizes: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            size = self.node_sizes.get(id(node))
            if size is None:
                raise YAMLLimitError(
                    None, None, "an alias refers to a node that contains it (recursive)", mark
                )
            self._count(size, mark)
            return node
        mark = self.peek_event().start_mark
        before = self.expanded_nodes
        self._count(1, mark)
        self.depth += 1
        if self.depth > MAX_YAML_DEPTH:
            raise YAMLLimitError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
        node = super().compose_node(parent, index)
        self.depth -= 1
        self.node_sizes[id(node)] = self.expanded_nodes - before
        return node

    def _count(self, nodes: int, mark: Any) -> None:
        self.expanded_nodes += nodes
        if self.expanded_nodes > MAX_YAML_NODES:
            raise YAMLLimitError(
                None,
                None,
                f"with its aliases expanded the document has more than {MAX_YAML_NODES:,} "
                "nodes (an alias bomb?)",
                mark,
            )


class BoundedLoader(BoundedComposer, CParser, SafeConstructor, Resolver):
    """``yaml.safe_load``'s rules, libyaml's parser, and the composer above."""

    def __init__(self, stream: str) -> None:
        CParser.__init__(self, stream)
        BoundedComposer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


def load_yaml(text: str) -> Any:
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def stored_size(document: Any) -> int:
    """Bytes of ``document`` as either database gives it back as text, at most.

    SQLite keeps ``json.dumps``'s text (ASCII, ``", "`` and ``": "``); Postgres's jsonb
    prints the same separators, characters as UTF-8 (never longer than their ``\\u``
    escapes) and numbers without exponents (1e+300 as 301 digits). The dispatcher
    splices that text into run requests as it is.
    """
    text = json.dumps(document, allow_nan=False)
    size = len(text)
    if _EXPONENT_RE.search(text):  # only then can a number grow (a string may match too)
        for number in _floats(document):
            written = repr(number)
            size += max(0, len(format(Decimal(written), "f")) - len(written))
    return size


_EXPONENT_RE = re.compile(r"\d[eE][+-]?\d")


def _floats(value: Any) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _floats(item)
    elif isinstance(value, list):
        for item in value:
            yield from _floats(item)


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _unstorable_text(text: str) -> str | None:
    """Why Postgres would refuse ``text``, if it would."""
    if "\x00" in text:
        return "contains a NUL character (U+0000), which the database cannot store"
    surrogate = _SURROGATE_RE.search(text)
    if surrogate is not None:
        return (
            f"contains {surrogate.group()!r}, half of a UTF-16 surrogate pair and not a "
            "character: the database cannot store it"
        )
    return None


def _may_be_unstorable(snapshot: Any, python_form: Any) -> bool:
    """A quick look, in C, before ``unstorable`` walks a document in Python: no
    non-finite number, no escaped NUL, no surrogate escape (emoji are escaped as
    surrogate pairs, and only then is it worth a closer look)."""
    try:
        json.dumps(python_form, allow_nan=False, default=str)
        text = json.dumps(snapshot, allow_nan=False)
    except (ValueError, TypeError):  # TypeError: a key json.dumps cannot write (a date)
        return True
    return "\\u0000" in text or "\\ud" in text


def unstorable(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(field, reason) for every value of a JSON document the database would refuse."""
    if isinstance(value, str):
        reason = _unstorable_text(value)
        if reason is not None:
            yield path, reason
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield path, f"{value} is not a finite number: the database cannot store it"
    elif isinstance(value, dict):
        if set(value) == {"action", "args"}:
            # A browser step: named as validation names it, browser.steps[2].value
            yield from unstorable(value["args"], path)
            return
        for key, item in value.items():
            reason = _unstorable_text(str(key))
            if reason is not None:
                yield path, f"the key {key!r} {reason}"
            yield from unstorable(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unstorable(item, f"{path}[{index}]")


def _entity_name(kind: str, raw: Any, index: int) -> str:
    ident = raw.get("id") if isinstance(raw, Mapping) else None
    return f"{kind} {ident!r}" if isinstance(ident, str) and ident else f"{kind} #{index + 1}"


def parse_document(text: str, file: str, definitions: Definitions, problems: list[Problem]) -> None:
    """Validate one YAML document, adding its checks and channels to ``definitions``."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        problems.append(Problem(file, None, None, _too_big(size)))
        return
    try:
        document = load_yaml(text)
    except YAMLLimitError as exc:
        mark = exc.problem_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problems.append(Problem(file, None, None, f"refused: {line}{exc.problem}"))
        return
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


def _too_big(size: int) -> str:
    return (
        f"is {size:,} bytes; a definitions file may have {MAX_FILE_BYTES // (1024 * 1024)} MiB "
        "at most: split it into several files"
    )


def _storage_checks(definitions: Definitions, problems: list[Problem]) -> None:
    """What the database or a run request could not carry, found before either sees it."""
    limit = MAX_SNAPSHOT_BYTES
    long_paths: set[str] = set()
    for check, file in zip(definitions.checks, definitions.check_files, strict=True):
        entity = f"check {check.id!r}"
        if len(file) > MAX_SOURCE_FILE_CHARS and file not in long_paths:
            long_paths.add(file)
            problems.append(
                Problem(
                    file,
                    None,
                    None,
                    f"its path has {len(file)} characters; the database keeps "
                    f"{MAX_SOURCE_FILE_CHARS} at most (checks.source_file)",
                )
            )
        reason = _unstorable_text(file)
        if reason is not None and file not in long_paths:
            long_paths.add(file)
            problems.append(Problem(file, None, None, f"its path {reason}"))
        try:
            snapshot = check.snapshot()
        except ValueError as exc:  # pydantic cannot write it as JSON (bytes, say)
            problems.append(Problem(file, entity, None, f"cannot be stored as JSON: {exc}"))
            continue
        # The Python form too: JSON mode writes an infinity as null, silently.
        python_form = check.model_dump()
        bad = (
            list(dict.fromkeys([*unstorable(snapshot), *unstorable(python_form)]))
            if _may_be_unstorable(snapshot, python_form)
            else []
        )
        for path, message in bad:
            problems.append(Problem(file, entity, path or None, message))
        if bad:
            continue
        size = stored_size(snapshot)
        if size > limit:
            problems.append(
                Problem(
                    file,
                    entity,
                    None,
                    f"its definition takes {size:,} bytes stored; a check may take "
                    f"{limit:,} (it travels in every run request, and an SQS message "
                    f"carries {SQS_MAX_MESSAGE_BYTES // 1024} KiB with its envelopes)",
                )
            )
    for channel, file in zip(definitions.channels, definitions.channel_files, strict=True):
        for path, message in unstorable(channel.model_dump(mode="json")):
            problems.append(Problem(file, f"channel {channel.id!r}", path or None, message))


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
    floor = (settings or Settings).min_frequency
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
    # With the locations filled in: they are part of the stored snapshot.
    _storage_checks(definitions, problems)
    return definitions


def load_definitions(
    path: Path | str | Sequence[Path | str], settings: Settings | None = None
) -> Definitions:
    """Every check and channel under ``path`` (one path or several, validated together:
    an id defined under two of them is a problem); raises ``DefinitionError`` on any."""
    paths = [Path(path)] if isinstance(path, Path | str) else [Path(p) for p in path]
    definitions = Definitions()
    problems: list[Problem] = []
    for file in (file for folder in paths for file in definition_files(folder)):
        try:
            with file.open("rb") as stream:
                # One byte more than allowed tells a file too big, without reading it all.
                data = stream.read(MAX_FILE_BYTES + 1)
                if len(data) > MAX_FILE_BYTES:
                    size = max(file.stat().st_size, len(data))
                    problems.append(Problem(str(file), None, None, _too_big(size)))
                    continue
            text = data.decode("utf-8")
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

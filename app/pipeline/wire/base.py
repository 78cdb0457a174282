"""What every message version is built from: the poison error, the base of the wire models,
and ``Layout``, which maps a wire model to a dataclass of synmon's in both directions."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import NoneType
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict

from config.errors import SynmonError


class MessageError(SynmonError, ValueError):
    """A message synmon cannot process, however often it is delivered (poison).

    Still a ``ValueError``, as it was before ``SynmonError`` existed, for callers that
    catch that.
    """


class Wire(BaseModel):
    # Unknown fields are ignored: a newer minor producer may add some.
    model_config = ConfigDict(extra="ignore", frozen=True)


def to_wire(value: Any) -> Any:
    """A value as JSON carries it: ids as text, times as ISO 8601 in UTC."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def from_wire(value: Any) -> Any:
    """A validated wire value as synmon holds it: a time without a zone is in UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class _Group:
    """A nested object of a wire model: its fields, each with the dataclass field it carries."""

    carries: dict[str, str]
    nullable: bool  # null rather than an object when none of its required fields has a value
    required: tuple[str, ...]


def _nested(annotation: Any) -> tuple[type[Wire] | None, bool]:
    """The wire model a field's annotation nests (None if it nests none), and if it is nullable."""
    members = get_args(annotation) or (annotation,)
    models = [m for m in members if isinstance(m, type) and issubclass(m, Wire)]
    return (models[0] if models else None), NoneType in members


class Layout:
    """How one wire model lays out the fields of a dataclass, for encoding and decoding alike.

    Every field of the model but ``v`` carries the dataclass field of the same name, unless
    ``renamed`` maps its path (``"timing.phases"``) to another one. A field whose type is a
    wire model is a nested object, laid out the same way. So a version's mapping is
    written once, and the encoder and the decoder cannot drift apart.
    """

    def __init__(
        self, model: type[Wire], target: type[Any], renamed: Mapping[str, str] | None = None
    ) -> None:
        renamed = dict(renamed or {})
        self.version: int = get_args(model.model_fields["v"].annotation)[0]
        self._slots: dict[str, str | _Group] = {}
        for name, info in model.model_fields.items():
            if name == "v":
                continue
            nested, nullable = _nested(info.annotation)
            if nested is None:
                self._slots[name] = renamed.pop(name, name)
                continue
            carries = {sub: renamed.pop(f"{name}.{sub}", sub) for sub in nested.model_fields}
            required = tuple(sub for sub, i in nested.model_fields.items() if i.is_required())
            self._slots[name] = _Group(carries, nullable, required)
        known = {f.name for f in dataclasses.fields(target)}
        unknown = sorted(set(self.carried()) - known)
        if renamed or unknown:  # a typo in a mapping fails at import, not on the wire
            raise TypeError(f"{model.__name__}: no such field: {sorted(renamed) + unknown}")

    def carried(self) -> tuple[str, ...]:
        """The dataclass fields this layout carries."""
        names: list[str] = []
        for slot in self._slots.values():
            names.extend([slot] if isinstance(slot, str) else slot.carries.values())
        return tuple(names)

    def encode(self, source: object) -> dict[str, Any]:
        """The wire dict of ``source``, in the model's field order (which the bytes follow)."""
        document: dict[str, Any] = {"v": self.version}
        for name, slot in self._slots.items():
            if isinstance(slot, str):
                document[name] = to_wire(getattr(source, slot))
                continue
            values = {sub: to_wire(getattr(source, field)) for sub, field in slot.carries.items()}
            empty = slot.nullable and all(values[sub] is None for sub in slot.required)
            document[name] = None if empty else values
        return document

    def decode(self, message: Wire) -> dict[str, Any]:
        """The dataclass fields that the validated ``message`` carries, by name."""
        values: dict[str, Any] = {}
        for name, slot in self._slots.items():
            part = getattr(message, name)
            if isinstance(slot, str):
                values[slot] = from_wire(part)
                continue
            for sub, field in slot.carries.items():
                values[field] = None if part is None else from_wire(getattr(part, sub))
        return values

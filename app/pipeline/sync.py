"""``synmon sync``: make the database hold exactly the checks and channels of a folder."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.definitions.loader import Definitions
from app.definitions.models import Channel, Check
from app.pipeline.schedule import first_run_after
from app.storage.models import ChannelRow, CheckRow, CheckStateRow


def definition_hash(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Change:
    kind: str  # "check" | "channel"
    id: str
    action: str  # "create" | "update" | "remove"
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        verb = {"create": "create", "update": "update", "remove": "remove"}[self.action]
        return f"{verb} {self.kind} {self.id}{detail}"


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not self.changes

    def summary(self, applied: bool) -> str:
        if self.empty:
            return f"no changes: {self.unchanged} definition(s) already up to date"
        lines = [str(change) for change in self.changes]
        tense = "applied" if applied else "planned (dry run, nothing applied)"
        counts = {
            a: sum(1 for c in self.changes if c.action == a) for a in ("create", "update", "remove")
        }
        lines.append(
            f"{tense}: {counts['create']} to create, {counts['update']} to update, "
            f"{counts['remove']} to remove, {self.unchanged} unchanged"
        )
        return "\n".join(lines)


def _changed_fields(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, ...]:
    keys = sorted(set(old) | set(new))
    return tuple(k for k in keys if old.get(k) != new.get(k))


def _channel_document(channel: Channel) -> dict[str, Any]:
    return channel.model_dump(mode="json", exclude={"id", "type"})


def plan(session: Session, definitions: Definitions) -> Plan:
    result = Plan()
    existing_checks = {row.id: row for row in session.scalars(select(CheckRow))}
    wanted_checks = {check.id: check for check in definitions.checks}
    for check in definitions.checks:
        row = existing_checks.get(check.id)
        snapshot = check.snapshot()
        if row is None:
            result.changes.append(Change("check", check.id, "create"))
        elif row.definition_hash != definition_hash(snapshot):
            result.changes.append(
                Change("check", check.id, "update", _changed_fields(row.definition, snapshot))
            )
        else:
            result.unchanged += 1
    for check_id in sorted(set(existing_checks) - set(wanted_checks)):
        result.changes.append(Change("check", check_id, "remove"))

    existing_channels = {row.id: row for row in session.scalars(select(ChannelRow))}
    wanted_channels = {channel.id for channel in definitions.channels}
    for channel in definitions.channels:
        channel_row = existing_channels.get(channel.id)
        document = _channel_document(channel)
        if channel_row is None:
            result.changes.append(Change("channel", channel.id, "create"))
        elif channel_row.type != channel.type or channel_row.config != document:
            result.changes.append(
                Change(
                    "channel", channel.id, "update", _changed_fields(channel_row.config, document)
                )
            )
        else:
            result.unchanged += 1
    for channel_id in sorted(set(existing_channels) - wanted_channels):
        result.changes.append(Change("channel", channel_id, "remove"))
    return result


def _apply_check(
    session: Session, check: Check, source: str, row: CheckRow | None, now: datetime
) -> None:
    snapshot = check.snapshot()
    if row is None:
        row = CheckRow(id=check.id, created_at=now, rr_cursor=0)
        session.add(row)
        row.next_run_at = first_run_after(check.id, check.frequency, now)
    elif row.frequency_s != check.frequency:
        row.next_run_at = first_run_after(check.id, check.frequency, now)
    row.name = check.name or check.id
    row.kind = check.type
    row.definition = snapshot
    row.definition_hash = definition_hash(snapshot)
    row.frequency_s = check.frequency
    row.locations = list(check.locations)
    row.run_mode = check.run_mode
    row.enabled = check.enabled
    row.source_file = source
    row.updated_at = now


def apply(
    session: Session, definitions: Definitions, the_plan: Plan, now: datetime | None = None
) -> None:
    """Carry out ``the_plan`` inside the caller's transaction."""
    now = now or datetime.now(UTC)
    touched = {(c.kind, c.id): c.action for c in the_plan.changes}
    rows = {row.id: row for row in session.scalars(select(CheckRow))}
    for check, source in zip(definitions.checks, definitions.check_files, strict=True):
        if touched.get(("check", check.id)) in ("create", "update"):
            _apply_check(session, check, source, rows.get(check.id), now)
    channel_rows = {row.id: row for row in session.scalars(select(ChannelRow))}
    for channel in definitions.channels:
        if touched.get(("channel", channel.id)) in ("create", "update"):
            channel_row = channel_rows.get(channel.id)
            if channel_row is None:
                channel_row = ChannelRow(id=channel.id, created_at=now)
                session.add(channel_row)
            channel_row.type = channel.type
            channel_row.config = _channel_document(channel)
            channel_row.updated_at = now
    removed_checks = [c.id for c in the_plan.changes if c.kind == "check" and c.action == "remove"]
    removed_channels = [
        c.id for c in the_plan.changes if c.kind == "channel" and c.action == "remove"
    ]
    if removed_checks:
        session.execute(delete(CheckRow).where(CheckRow.id.in_(removed_checks)))
        session.execute(delete(CheckStateRow).where(CheckStateRow.check_id.in_(removed_checks)))
    if removed_channels:
        session.execute(delete(ChannelRow).where(ChannelRow.id.in_(removed_channels)))


def sync(session: Session, definitions: Definitions, dry_run: bool = False) -> Plan:
    """Plan, and unless ``dry_run`` apply, in one transaction: all of it or nothing."""
    with session.begin():
        the_plan = plan(session, definitions)
        if not dry_run and not the_plan.empty:
            apply(session, definitions, the_plan)
    return the_plan

"""Recording activity. Called by the service that performs a write, inside its transaction, so an
entry exists exactly when the change it describes was committed."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from accounts.models import Project, User
from activity.models import ActivityLog
from experiments_api.rows import insert_row

CHANGED = "changed"
CREATED = "created"
DELETED = "deleted"


def to_json_value(value: Any) -> Any:
    """A JSON-storable rendering of a field value (dates as ISO strings, ids as strings)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    return value


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def changes_between(scope: str, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Field-level changes between two snapshots, as PostHog's `changes_between`: empty to value is
    `created`, value to empty is `deleted`, anything else that differs is `changed`."""
    changes = []
    for field in sorted(set(before) | set(after)):
        if before.get(field) == after.get(field):
            # Equal values render to equal JSON: nothing to compare further (the common case).
            continue
        old, new = to_json_value(before.get(field)), to_json_value(after.get(field))
        if old == new or (is_empty(old) and is_empty(new)):
            continue
        if is_empty(old):
            action = CREATED
        elif is_empty(new):
            action = DELETED
        else:
            action = CHANGED
        changes.append({"type": scope, "action": action, "field": field, "before": old, "after": new})
    return changes


def activity_log_record(
    *,
    project: Project,
    user: User | None,
    scope: str,
    item_id: Any,
    activity: str,
    name: str | None = None,
    changes: list[dict[str, Any]] | None = None,
    detail_type: str | None = None,
    extra: dict[str, Any] | None = None,
) -> ActivityLog:
    """Store one activity entry for `project`, attributed to the acting `user` (system when None).
    Every write stores one or more, so the INSERT is written out once per process (no model signals
    are sent for entries; nothing listens to them)."""
    detail: dict[str, Any] = {
        "id": str(item_id),
        "name": name,
        "short_id": None,
        "type": detail_type,
        "changes": changes or [],
        "trigger": None,
    }
    if extra:
        detail.update(to_json_value(extra))
    entry = ActivityLog(
        project=project,
        organization_id=project.organization_id,
        user=user if user is not None and user.is_authenticated else None,
        is_system=user is None,
        scope=scope,
        item_id=str(item_id),
        activity=activity,
        detail=detail,
    )
    insert_row(entry)
    return entry


def activity_log_changes(
    *,
    project: Project,
    user: User | None,
    scope: str,
    item_id: Any,
    activity: str,
    before: dict[str, Any],
    after: dict[str, Any],
    name: str | None = None,
    detail_type: str | None = None,
) -> ActivityLog | None:
    """Record `activity` with the field changes between two snapshots; nothing when nothing changed."""
    changes = changes_between(scope, before, after)
    if not changes:
        return None
    return activity_log_record(
        project=project,
        user=user,
        scope=scope,
        item_id=item_id,
        activity=activity,
        name=name,
        changes=changes,
        detail_type=detail_type,
    )

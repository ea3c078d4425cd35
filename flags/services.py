"""Every write to a feature flag happens here.

Each public function runs in one transaction with the flag row locked, validates through
`flags/validation.py`, bumps `version`, and records activity. Experiments change their flag only
through these functions, inside the experiment's own transaction, so an experiment and its flag
never disagree.
"""

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, RestrictedError
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError

from accounts.models import Project, User
from activity.services import activity_log_changes, activity_log_record
from approvals.gate import approval_gate
from approvals.observer import report_flag_change
from flags.hooks import flag_experiments
from flags.models import FeatureFlag
from flags.payload_encryption import encrypted_payloads, plain_filters, readable_payloads
from flags.validation import FLAG_KEY_TAKEN, validate_flag_filters, validate_flag_key

FLAG_ACTIVITY_SCOPE = "FeatureFlag"
FLAG_USED_BY_DELETED_EXPERIMENT = (
    "Feature flag with this key already exists and is used in an experiment. "
    "Please delete the experiment before deleting the flag."
)
FLAG_TRACKED_FIELDS = (
    "key",
    "name",
    "filters",
    "active",
    "deleted",
    "ensure_experience_continuity",
    "evaluation_runtime",
    "tags",
    "is_remote_configuration",
    "has_encrypted_payloads",
)
FLAG_WRITABLE_FIELDS = frozenset(FLAG_TRACKED_FIELDS)


class FlagConflict(APIException):
    """Someone else changed the flag since the caller read it (PostHog's optimistic-concurrency 409)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = (
        "The feature flag was updated since you started editing it. Please refresh and try again."
    )


def flag_snapshot(flag: FeatureFlag) -> dict[str, Any]:
    return {field: getattr(flag, field) for field in FLAG_TRACKED_FIELDS}


def flag_lock(*, flag_id: int) -> FeatureFlag:
    """Re-read a flag with its row locked until the surrounding transaction ends."""
    return FeatureFlag.objects.select_for_update().get(pk=flag_id)


def flags_depending_on(flag: FeatureFlag) -> list[FeatureFlag]:
    """Active, live flags of the project whose conditions require `flag` (flag-type properties)."""
    dependants = []
    candidates = FeatureFlag.objects.filter(project_id=flag.project_id, deleted=False, active=True).exclude(
        pk=flag.pk
    )
    for candidate in candidates.only("id", "key", "filters"):
        for group in (candidate.filters or {}).get("groups") or []:
            properties = group.get("properties") if isinstance(group, dict) else None
            if any(
                isinstance(prop, dict) and prop.get("type") == "flag" and str(prop.get("key")) == str(flag.pk)
                for prop in properties or []
            ):
                dependants.append(candidate)
                break
    return sorted(dependants, key=lambda item: item.key)


def flag_dependencies(flag: FeatureFlag) -> list[FeatureFlag]:
    """Flags that `flag`'s conditions require."""
    ids = set()
    for group in (flag.filters or {}).get("groups") or []:
        for prop in (group.get("properties") if isinstance(group, dict) else None) or []:
            if isinstance(prop, dict) and prop.get("type") == "flag":
                try:
                    ids.add(int(prop.get("key")))
                except (TypeError, ValueError):
                    continue
    if not ids:
        return []
    return list(
        FeatureFlag.objects.filter(project_id=flag.project_id, pk__in=ids, deleted=False).order_by("key")
    )


def remote_config_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """A new remote-config flag's release conditions, as PostHog sets them: it serves its config to
    everyone, so a condition with a 0% (or unset) rollout is rolled out to 100%."""
    groups = [dict(group) if isinstance(group, dict) else group for group in filters.get("groups") or []]
    for group in groups:
        if isinstance(group, dict) and group.get("rollout_percentage") in (0, None):
            group["rollout_percentage"] = 100
    return {**filters, "groups": groups}


def stored_filters(
    filters: dict[str, Any], *, encrypted: bool | None, stored: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`filters` (with plain payloads) as the flag stores them: payloads encrypted when `encrypted`,
    keeping each token of the `stored` filters whose payload did not change."""
    if not encrypted or not filters.get("payloads"):
        return filters
    stored_payloads = (stored or {}).get("payloads")
    return {
        **filters,
        "payloads": encrypted_payloads(
            filters["payloads"], stored=stored_payloads if isinstance(stored_payloads, dict) else {}
        ),
    }


def describe_flags(flags: list[FeatureFlag]) -> str:
    names = [f"{flag.key} (ID: {flag.id})" for flag in flags[:5]]
    if len(flags) > 5:
        names.append(f"and {len(flags) - 5} more")
    return ", ".join(names)


@approval_gate(
    name="flags.flag_create",
    resource_type="feature_flag",
    resource=lambda kwargs: None,
    project=lambda kwargs: kwargs["project"],
)
def flag_create(
    *,
    project: Project,
    user: User | None,
    key: str,
    filters: dict[str, Any],
    name: str = "",
    active: bool = True,
    ensure_experience_continuity: bool | None = False,
    creation_context: str = FeatureFlag.CreationContext.FEATURE_FLAGS,
    evaluation_runtime: str | None = FeatureFlag.EvaluationRuntime.ALL,
    tags: list[str] | None = None,
    is_remote_configuration: bool | None = False,
    has_encrypted_payloads: bool | None = False,
) -> FeatureFlag:
    """Create a flag. A soft-deleted flag with the same key is removed first, as PostHog does, so
    keys can be reused; if an experiment still references that old flag, creation is refused.
    A remote-config flag is rolled out to everyone (`remote_config_filters`); with
    `has_encrypted_payloads` its payloads are stored encrypted."""
    with transaction.atomic():
        validate_flag_key(key, project=project)
        if is_remote_configuration:
            filters = remote_config_filters(filters)
        validated_filters = stored_filters(
            validate_flag_filters(filters, project=project, is_create=True), encrypted=has_encrypted_payloads
        )
        try:
            with transaction.atomic():
                FeatureFlag.objects.filter(project=project, key=key, deleted=True).delete()
        except (RestrictedError, ProtectedError):
            raise ValidationError(FLAG_USED_BY_DELETED_EXPERIMENT) from None
        try:
            with transaction.atomic():
                flag = FeatureFlag.objects.create(
                    project=project,
                    key=key,
                    name=name or "",
                    filters=validated_filters,
                    active=active,
                    ensure_experience_continuity=ensure_experience_continuity,
                    creation_context=creation_context,
                    evaluation_runtime=evaluation_runtime,
                    tags=tags or [],
                    is_remote_configuration=is_remote_configuration,
                    has_encrypted_payloads=has_encrypted_payloads,
                    created_by=user,
                    last_modified_by=user,
                    version=1,
                )
        except IntegrityError:
            # Another request created the same key between our check and our insert.
            raise ValidationError(FLAG_KEY_TAKEN, code="unique") from None
        activity_log_record(
            project=project,
            user=user,
            scope=FLAG_ACTIVITY_SCOPE,
            item_id=flag.id,
            activity="created",
            name=key,
        )
        report_flag_change(
            flag_id=None, flag_key=key, before={"active": False, "filters": {}}, after=flag_snapshot(flag)
        )
    return flag


def flag_apply_changes(*, flag: FeatureFlag, user: User | None, changes: dict[str, Any]) -> FeatureFlag:
    """Apply `changes` to a flag whose row the caller has locked inside a transaction: the one
    writer under `flag_update` (the flags API's gated update) and every experiment or holdout change.

    Validates, enforces PostHog's delete/disable dependency rules, increments `version`, saves and
    records activity. Unchanged values are no-ops (no version bump, no activity entry). Payloads are
    given in plain text and stored encrypted exactly while the flag has `has_encrypted_payloads`."""
    unknown = set(changes) - FLAG_WRITABLE_FIELDS
    if unknown:
        raise ValueError(f"flag_apply_changes cannot change {sorted(unknown)}")
    project = flag.project
    before = flag_snapshot(flag)
    updates = dict(changes)

    encrypted = updates.get("has_encrypted_payloads", flag.has_encrypted_payloads)
    if "filters" in updates:
        filters = updates["filters"]
        if (
            flag.has_encrypted_payloads
            and isinstance(filters, dict)
            and isinstance(filters.get("payloads"), dict)
        ):
            # Tokens read from the stored filters and sent back stand for their own plain payloads.
            stored = (flag.filters or {}).get("payloads") or {}
            sent = filters["payloads"]
            returned = {key: token for key, token in stored.items() if sent.get(key) == token}
            filters = {**filters, "payloads": {**sent, **readable_payloads(returned)}}
        updates["filters"] = validate_flag_filters(filters, project=project, is_create=False)
    elif bool(encrypted) != bool(flag.has_encrypted_payloads):
        updates["filters"] = plain_filters(flag.filters or {}, encrypted=flag.has_encrypted_payloads)
    if "filters" in updates:
        updates["filters"] = stored_filters(
            updates["filters"],
            encrypted=encrypted,
            stored=flag.filters if flag.has_encrypted_payloads else None,
        )
    if "key" in updates and updates["key"] != flag.key:
        validate_flag_key(updates["key"], project=project, exclude_flag_id=flag.pk)

    deleting = updates.get("deleted") is True and not flag.deleted
    restoring = updates.get("deleted") is False and flag.deleted
    if deleting:
        live_experiments = flag_experiments().live_experiment_ids(flag)
        if live_experiments:
            raise ValidationError(
                "Cannot delete a feature flag that is linked to active experiment(s) with ID(s): "
                f"{', '.join(map(str, live_experiments))}. Please delete the experiment(s) before deleting the flag."
            )
        dependants = flags_depending_on(flag)
        if dependants:
            raise ValidationError(
                f"Cannot delete this feature flag because other flags depend on it: {describe_flags(dependants)}. "
                "Please update or delete the dependent flags first."
            )
        if flag_experiments().has_deleted_experiments(flag):
            # Keep the row for the deleted experiments that point at it, but free its key for reuse.
            updates["key"] = f"{flag.key}:deleted:{flag.id}"
    if restoring:
        suffix = f":deleted:{flag.id}"
        if "key" not in updates and flag.key.endswith(suffix):
            # Deleting renamed the key to free it; restoring gives it back (if it is still free).
            updates["key"] = flag.key.removesuffix(suffix)
        validate_flag_key(updates.get("key", flag.key), project=project, exclude_flag_id=flag.pk)

    if updates.get("active") is False and flag.active and not deleting:
        dependants = flags_depending_on(flag)
        if dependants:
            raise ValidationError(
                f"Cannot disable this feature flag because other flags depend on it: {describe_flags(dependants)}. "
                "Please update or disable the dependent flags first."
            )
    if updates.get("active") is True and not flag.active:
        candidate_filters = updates.get("filters", flag.filters)
        probe = FeatureFlag(project_id=flag.project_id, filters=candidate_filters)
        disabled = [dependency for dependency in flag_dependencies(probe) if not dependency.active]
        if disabled:
            raise ValidationError(
                f"Cannot enable this feature flag because it depends on disabled flags: {describe_flags(disabled)}. "
                "Please enable the dependency flags first."
            )

    for field, value in updates.items():
        setattr(flag, field, value)
    after = flag_snapshot(flag)
    if after == before:
        return flag
    flag.version = (flag.version or 0) + 1
    flag.last_modified_by = user
    try:
        with transaction.atomic():
            flag.save()
    except IntegrityError:
        raise ValidationError(FLAG_KEY_TAKEN, code="unique") from None

    report_flag_change(flag_id=flag.id, flag_key=flag.key, before=before, after=after)
    activity = "updated"
    if deleting:
        activity = "deleted"
    elif restoring:
        activity = "restored"
    activity_log_changes(
        project=project,
        user=user,
        scope=FLAG_ACTIVITY_SCOPE,
        item_id=flag.id,
        activity=activity,
        before=before,
        after=after,
        name=flag.key,
    )
    return flag


@approval_gate(
    name="flags.flag_update",
    resource_type="feature_flag",
    resource=lambda kwargs: kwargs["flag"],
    project=lambda kwargs: kwargs["flag"].project,
    flag_action_keys=lambda kwargs: flag_experiments().approval_keys_for_flag(kwargs["flag"]),
)
def flag_update(
    *,
    flag: FeatureFlag,
    user: User | None,
    changes: dict[str, Any],
    expected_version: int | None = None,
    original_flag: dict[str, Any] | None = None,
) -> FeatureFlag:
    """Update a flag from the flags API: lock, check for a concurrent edit, then `flag_apply_changes`.

    As PostHog: when the caller sends the `version` it read plus the `original_flag` it edited, a
    field it changes that someone else also changed since is a 409 conflict."""
    with transaction.atomic():
        locked = flag_lock(flag_id=flag.pk)
        if expected_version is not None and original_flag and expected_version != (locked.version or 0):
            conflicting = [
                field
                for field, value in changes.items()
                if field in original_flag
                and value != original_flag[field]
                and original_flag[field] != getattr(locked, field)
                and value != getattr(locked, field)
            ]
            if conflicting:
                editor = locked.last_modified_by.email if locked.last_modified_by else "another user"
                raise FlagConflict(
                    f"The feature flag was updated by {editor} since you started editing it. "
                    "Please refresh and try again."
                )
        return flag_apply_changes(flag=locked, user=user, changes=changes)

"""Holdout writes. A holdout's first rollout is the exclusion share written into the flag of every
experiment using it, so changing or deleting a holdout rewrites those flags in the same transaction."""

from copy import deepcopy
from typing import Any

from django.db import transaction

from accounts.models import Project, User
from accounts.versions import atomic_moving_versions_once
from activity.services import activity_log_changes, activity_log_record
from approvals.gate import approval_gate
from approvals.observer import Facet, report_facet
from flags.models import FeatureFlag
from flags.services import flag_apply_changes, flag_lock
from holdouts.models import ExperimentHoldout
from holdouts.validation import with_holdout_variant

HOLDOUT_ACTIVITY_SCOPE = "Experiment"
HOLDOUT_ACTIVITY_TYPE = "holdout"
HOLDOUT_TRACKED_FIELDS = ("name", "description", "filters")


def holdout_snapshot(holdout: ExperimentHoldout) -> dict[str, Any]:
    return {field: deepcopy(getattr(holdout, field)) for field in HOLDOUT_TRACKED_FIELDS}


def linked_flags(holdout: ExperimentHoldout) -> list[FeatureFlag]:
    """The flags of every experiment using the holdout, locked, each once (experiments may share one).
    The experiments are locked first, in id order: a launch locks its experiment before its flag, and
    taking them in the other order here let a holdout write and a launch deadlock."""
    experiment_flags = (
        holdout.experiment_set.select_for_update().order_by("pk").values_list("feature_flag_id", flat=True)
    )
    flag_ids = sorted(set(experiment_flags))
    return [flag_lock(flag_id=flag_id) for flag_id in flag_ids]


def set_flag_holdout(flag: FeatureFlag, user: User | None, holdout_filter: dict | None) -> None:
    filters = deepcopy(flag.filters or {})
    filters["holdout"] = holdout_filter
    flag_apply_changes(flag=flag, user=user, changes={"filters": filters})


def holdout_create(
    *, project: Project, user: User | None, name: str, filters: list[dict], description: str | None = None
) -> ExperimentHoldout:
    """Create a holdout; every condition's variant becomes `holdout-<id>`."""
    with transaction.atomic():
        holdout = ExperimentHoldout.objects.create(
            project=project, created_by=user, name=name, description=description, filters=filters
        )
        holdout.filters = with_holdout_variant(filters, holdout.id)
        holdout.save(update_fields=["filters"])
        activity_log_record(
            project=project,
            user=user,
            scope=HOLDOUT_ACTIVITY_SCOPE,
            item_id=holdout.id,
            activity="created",
            name=holdout.name,
            detail_type=HOLDOUT_ACTIVITY_TYPE,
        )
    return holdout


HOLDOUT_UPDATE_KEYS = ["experiment_holdout.update", "experiment.update"]
HOLDOUT_DELETE_KEYS = ["experiment_holdout.delete", "experiment.update"]


def report_holdout_facet(
    keys: list[str], holdout: ExperimentHoldout, before: Any, after: Any, description: str
) -> None:
    """Report a change of the holdout's exclusion share (the first condition's rollout)."""
    report_facet(
        Facet(
            [*keys, "feature_flag.update"],
            "experiment_holdout",
            str(holdout.id),
            description,
            {"rollout_percentage": [{"path": "filters[0].rollout_percentage", "value": before}]},
            {"rollout_percentage": [{"path": "filters[0].rollout_percentage", "value": after}]},
        )
    )


@approval_gate(
    name="holdouts.holdout_update",
    resource_type="experiment_holdout",
    resource=lambda kwargs: kwargs["holdout"],
    project=lambda kwargs: kwargs["holdout"].project,
    flag_action_keys=lambda kwargs: {"update": HOLDOUT_UPDATE_KEYS},
)
def holdout_update(
    *, holdout: ExperimentHoldout, user: User | None, changes: dict[str, Any]
) -> ExperimentHoldout:
    """Change a holdout. New filters rewrite `filters.holdout` on every linked experiment's flag,
    running experiments included; a name or description change touches no flag. The project's
    counters move once, last (after the flags are locked, as a launch moves them after locking its
    flag, so the two cannot wait on each other)."""
    with atomic_moving_versions_once():
        holdout = ExperimentHoldout.objects.select_for_update().get(pk=holdout.pk)
        before = holdout_snapshot(holdout)
        exclusion_before = holdout.exclusion_percentage
        changes = dict(changes)
        if "filters" in changes:
            changes["filters"] = with_holdout_variant(changes["filters"], holdout.id)
        filters_changed = "filters" in changes and changes["filters"] != holdout.filters
        for field, value in changes.items():
            setattr(holdout, field, value)
        holdout.save()
        if filters_changed:
            for flag in linked_flags(holdout):
                set_flag_holdout(flag, user, holdout.flag_holdout_filter())
        if holdout.exclusion_percentage != exclusion_before:
            report_holdout_facet(
                HOLDOUT_UPDATE_KEYS,
                holdout,
                exclusion_before,
                holdout.exclusion_percentage,
                f"Change holdout '{holdout.name}' exclusion: {exclusion_before}% -> {holdout.exclusion_percentage}%",
            )
        activity_log_changes(
            project=holdout.project,
            user=user,
            scope=HOLDOUT_ACTIVITY_SCOPE,
            item_id=holdout.id,
            activity="updated",
            before=before,
            after=holdout_snapshot(holdout),
            name=holdout.name,
            detail_type=HOLDOUT_ACTIVITY_TYPE,
        )
    return holdout


@approval_gate(
    name="holdouts.holdout_delete",
    resource_type="experiment_holdout",
    resource=lambda kwargs: kwargs["holdout"],
    project=lambda kwargs: kwargs["holdout"].project,
    flag_action_keys=lambda kwargs: {"update": HOLDOUT_DELETE_KEYS},
)
def holdout_delete(*, holdout: ExperimentHoldout, user: User | None) -> None:
    """Delete a holdout: linked flags lose `filters.holdout`, linked experiments are detached. The
    project's counters move once, last (as for `holdout_update`)."""
    with atomic_moving_versions_once():
        holdout = ExperimentHoldout.objects.select_for_update().get(pk=holdout.pk)
        for flag in linked_flags(holdout):
            set_flag_holdout(flag, user, None)
        report_holdout_facet(
            HOLDOUT_DELETE_KEYS,
            holdout,
            holdout.exclusion_percentage,
            None,
            f"Delete holdout '{holdout.name}'",
        )
        activity_log_record(
            project=holdout.project,
            user=user,
            scope=HOLDOUT_ACTIVITY_SCOPE,
            item_id=holdout.id,
            activity="deleted",
            name=holdout.name,
            detail_type=HOLDOUT_ACTIVITY_TYPE,
        )
        holdout.delete()

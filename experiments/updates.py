"""Updating an experiment (PATCH/PUT): validate, plan, apply.

The sent values are checked against which keys a PATCH may carry, then planned against the locked
experiment and its flag (every check that can fail runs here, before anything is written), then
applied: links, flag, experiment and activity in one transaction. Which lifecycle field edits are
which transition is `lifecycle.PATCH_EDITS`.
"""

from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from rest_framework.exceptions import ValidationError

from accounts.models import User
from accounts.versions import atomic_moving_versions_once
from activity.services import activity_log_record, changes_between, to_json_value
from approvals.gate import approval_gate
from experiments import lifecycle
from experiments.fields import TRACKED_FIELDS, UPDATABLE_FIELDS
from experiments.flag_config import changed_flag_config, flag_changes_for_config
from experiments.lifecycle import EXPERIMENT_ACTIVITY_SCOPE
from experiments.links import experiment_links, forget_links
from experiments.locking import lock_experiment_and_flag
from experiments.metrics import assign_metric_uuids, metric_uuids, refresh_fingerprints, synced_ordering
from experiments.models import Experiment, ExperimentSavedMetric, ExperimentToSavedMetric
from experiments.saved_metrics import link_uuids_by_type, resolve_saved_metrics, sync_saved_metric_links
from experiments.selectors import is_legacy
from experiments.services import EXPERIMENT_FLAG_ACTION_KEYS, baseline_key, validate_orderings
from experiments.validation import (
    GLOBAL_FILTER_PROPERTIES,
    split_parameters,
    validate_excluded_variant_keys,
    validate_no_duplicate_metric_uuids,
    validate_stats_config,
)
from flags.models import FeatureFlag
from flags.services import flag_apply_changes, flag_snapshot

# Stands for a field the experiment does not have, so no sent value can equal it.
UNSET = object()
LEGACY_UPDATABLE_FIELDS = frozenset({"name", "description", "end_date", "deleted"})
RUNNING_TIME_RECOMMENDATIONS = ("recommended_running_time", "recommended_sample_size")
RUNNING_FLAG_CONFIG_NEEDS_OPT_IN = (
    "This experiment is running. To change its flag config, "
    "send update_feature_flag_params=true (or edit the feature flag directly)."
)
CANT_UPDATE_VARIANTS = "Can't update feature_flag_variants on Experiment"
CANT_UPDATE_HOLDOUT = "Can't update holdout on running Experiment"
RESTORE_WITH_DELETED_FLAG = (
    "Cannot restore experiment: the linked feature flag has been deleted. "
    "Restore the feature flag first, then restore the experiment."
)


def experiment_snapshot(experiment: Experiment) -> dict[str, Any]:
    return {field: deepcopy(getattr(experiment, field)) for field in TRACKED_FIELDS}


@dataclass
class ExperimentUpdatePlan:
    """What a validated PATCH writes: the experiment's new field values, the lifecycle edits among
    them, the flag changes (empty: the flag is untouched), the saved-metric links (None: untouched),
    and the orderings that only follow metric changes (left out of the activity entry)."""

    values: dict[str, Any]
    edits: list[lifecycle.FieldEdit]
    flag_changes: dict[str, Any]
    saved_metrics_ids: list[dict] | None
    saved_metrics: dict[int, ExperimentSavedMetric]
    auto_orderings: dict[str, list[str]]


@approval_gate(
    name="experiments.experiment_update",
    resource_type="experiment",
    resource=lambda kwargs: kwargs["experiment"],
    project=lambda kwargs: kwargs["experiment"].project,
    flag_action_keys=lambda kwargs: EXPERIMENT_FLAG_ACTION_KEYS,
)
def experiment_update(
    *,
    experiment: Experiment,
    user: User | None,
    data: dict[str, Any],
    update_feature_flag_params: bool = False,
) -> Experiment:
    """Apply a PATCH/PUT. A draft's flag follows its flag configuration; a running experiment's
    flag changes only with `update_feature_flag_params` (and then only the rollouts of the same
    variant keys). Edits of lifecycle fields are the transitions `lifecycle.PATCH_EDITS` says
    (setting a draft's start_date launches it, with the launch guards); `deleted` soft-deletes or
    restores. Everything is validated and planned before anything is written; the experiment, its
    flag, its links and the activity entries change in one transaction, with the rows locked."""
    with atomic_moving_versions_once():
        # The view found the experiment (a deleted one only for a restore).
        experiment, flag = lock_experiment_and_flag(experiment, include_deleted=True)
        links = experiment_links(experiment)
        values = update_validate(experiment, flag, data, links)
        plan = update_plan(
            experiment, flag, values, links, update_feature_flag_params=update_feature_flag_params
        )
        update_apply(experiment, flag, plan, user=user)
    return experiment


def update_validate(
    experiment: Experiment, flag: FeatureFlag, data: dict[str, Any], links: list[ExperimentToSavedMetric]
) -> dict[str, Any]:
    """The sent values, after the rules on which keys a PATCH may carry. A field that cannot change
    but is sent with its current value is an object read and sent back whole (read-modify-write),
    not an attempt to change it, so it is dropped."""
    values = dict(data)
    current_key = experiment.feature_flag_key
    requested_key = values.pop("feature_flag_key", current_key)
    for name in set(values) - UPDATABLE_FIELDS:
        if values[name] == getattr(experiment, name, UNSET):
            del values[name]
    extra = set(values) - UPDATABLE_FIELDS
    if requested_key != current_key:
        extra.add("get_feature_flag_key")
    if experiment.deleted and values.get("deleted") is False and flag.deleted:
        raise ValidationError(RESTORE_WITH_DELETED_FLAG)
    if is_legacy(experiment, links):
        disallowed = (set(values) | extra) - LEGACY_UPDATABLE_FIELDS
        if disallowed:
            raise ValidationError(
                "This experiment uses legacy metric formats and can only have its name, description, "
                f"or end_date updated. Cannot update: {', '.join(sorted(disallowed))}"
            )
    if extra:
        raise ValidationError(f"Can't update keys: {', '.join(sorted(extra))} on Experiment")
    return values


def update_plan(
    experiment: Experiment,
    flag: FeatureFlag,
    values: dict[str, Any],
    links: list[ExperimentToSavedMetric],
    *,
    update_feature_flag_params: bool,
) -> ExperimentUpdatePlan:
    """Check the sent values against the experiment and its flag, and work out everything the
    update writes. Raises before anything is written."""
    values = dict(values)
    edits = lifecycle.patch_edits(experiment_snapshot(experiment), values)
    if lifecycle.patch_launches(edits):
        lifecycle.assert_launchable(flag)

    stored_parameters, flag_config = split_parameters(values.get("parameters"))
    if "parameters" in values:
        values["parameters"] = stored_parameters
    flag_config = changed_flag_config(flag_config, flag) if flag_config else {}
    holdout_changed = "holdout" in values and values["holdout"] != experiment.holdout
    if not experiment.is_draft:
        if flag_config and not update_feature_flag_params:
            raise ValidationError({"parameters": [RUNNING_FLAG_CONFIG_NEEDS_OPT_IN]})
        sent_variants = flag_config.get("feature_flag_variants")
        if sent_variants is not None:
            current_keys = flag.variant_keys
            if len(sent_variants) != len(current_keys) or any(
                current_keys.count(variant["key"]) != 1 for variant in sent_variants
            ):
                raise ValidationError(CANT_UPDATE_VARIANTS)
        if holdout_changed:
            raise ValidationError(CANT_UPDATE_HOLDOUT)
    if (values.get("filters") or {}).get("properties"):
        raise ValidationError(GLOBAL_FILTER_PROPERTIES)

    update_links = "saved_metrics_ids" in values
    saved_metrics_ids = values.pop("saved_metrics_ids", None) or []
    saved_metrics = resolve_saved_metrics(experiment.project, saved_metrics_ids) if update_links else {}
    links_before = [(link.saved_metric, link.metadata) for link in links]
    links_after = (
        [(saved_metrics[item["id"]], item.get("metadata") or {}) for item in saved_metrics_ids]
        if update_links
        else links_before
    )

    seen = {uuid for uuids in link_uuids_by_type(links_after).values() for uuid in uuids}
    if "metrics" in values and "metrics_secondary" not in values:
        seen.update(metric_uuids(experiment.metrics_secondary))
    if "metrics_secondary" in values and "metrics" not in values:
        seen.update(metric_uuids(experiment.metrics))
    for field in ("metrics", "metrics_secondary"):
        if field in values:
            values[field] = assign_metric_uuids(values[field], seen=seen)
    if "metrics" in values or "metrics_secondary" in values:
        validate_no_duplicate_metric_uuids(values.get("metrics"), values.get("metrics_secondary"))

    new_variant_keys = [
        variant["key"] for variant in flag_config.get("feature_flag_variants") or flag.variants
    ]
    effective_stats = values.get("stats_config", experiment.stats_config)
    if "stats_config" in values or "feature_flag_variants" in flag_config:
        validate_stats_config(effective_stats, new_variant_keys)
    if values.get("excluded_variants"):
        validate_excluded_variant_keys(
            values["excluded_variants"], new_variant_keys, baseline_key(effective_stats)
        )

    # Ordering arrays follow inline metric and saved-metric changes; an explicit reorder sent by
    # the client is kept and validated.
    auto_orderings = {}
    uuids_before = link_uuids_by_type(links_before)
    uuids_after = link_uuids_by_type(links_after)
    for ordering_field, metrics_field, kind in (
        ("primary_metrics_ordered_uuids", "metrics", "primary"),
        ("secondary_metrics_ordered_uuids", "metrics_secondary", "secondary"),
    ):
        old_uuids = [*metric_uuids(getattr(experiment, metrics_field)), *uuids_before[kind]]
        new_uuids = [
            *metric_uuids(values.get(metrics_field, getattr(experiment, metrics_field))),
            *uuids_after[kind],
        ]
        added = [uuid for uuid in new_uuids if uuid not in old_uuids]
        removed = set(old_uuids) - set(new_uuids)
        auto_orderings[ordering_field] = synced_ordering(
            getattr(experiment, ordering_field), added=added, removed=removed
        )
        if added or removed:
            base = values.get(ordering_field, getattr(experiment, ordering_field))
            values[ordering_field] = synced_ordering(base, added=added, removed=removed)
    validate_orderings(
        {
            field: values.get(field, getattr(experiment, field))
            for field in (
                "metrics",
                "metrics_secondary",
                "primary_metrics_ordered_uuids",
                "secondary_metrics_ordered_uuids",
            )
        },
        links_after,
    )

    flag_changes = {}
    if (experiment.is_draft or update_feature_flag_params) and (flag_config or holdout_changed):
        flag_changes = flag_changes_for_config(flag, flag_config, values.get("holdout", experiment.holdout))
    return ExperimentUpdatePlan(
        values=values,
        edits=edits,
        flag_changes=flag_changes,
        saved_metrics_ids=saved_metrics_ids if update_links else None,
        saved_metrics=saved_metrics,
        auto_orderings=auto_orderings,
    )


def update_apply(
    experiment: Experiment, flag: FeatureFlag, plan: ExperimentUpdatePlan, *, user: User | None
) -> None:
    """Write a planned update: links, flag, experiment (launching it if the plan does), then report
    it to the approval gate and log it."""
    before = experiment_snapshot(experiment)
    flag_before = flag_snapshot(flag)
    if plan.saved_metrics_ids is not None:
        sync_saved_metric_links(
            experiment, user=user, saved_metrics_ids=plan.saved_metrics_ids, saved_metrics=plan.saved_metrics
        )
        forget_links(experiment)
    if plan.flag_changes:
        flag_apply_changes(flag=flag, user=user, changes=plan.flag_changes)
    for field, value in plan.values.items():
        setattr(experiment, field, value)
    if lifecycle.patch_launches(plan.edits):
        lifecycle.start_running(experiment, flag, user=user, start_date=experiment.start_date)
    else:
        refresh_fingerprints(experiment)
    experiment.save()
    after = experiment_snapshot(experiment)
    update_report_facets(experiment, before, after)
    update_log_activity(
        experiment,
        user=user,
        activity=lifecycle.patch_activity(plan.edits),
        before=before,
        after=after,
        auto_orderings=plan.auto_orderings,
        flag_before=flag_before,
    )


def update_report_facets(experiment: Experiment, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Report what a PATCH changes to the approval gate: each lifecycle edit with its own key is
    gated by it; every other changed field by `experiment.update`."""
    changed = {
        field for field in after if to_json_value(before.get(field)) != to_json_value(after.get(field))
    }

    def facet(key: str, fields: set[str], description: str) -> None:
        lifecycle.report_experiment_facet(
            key,
            experiment.id,
            description,
            {field: to_json_value(before.get(field)) for field in sorted(fields)},
            {field: to_json_value(after.get(field)) for field in sorted(fields)},
        )

    for edit in lifecycle.patch_edits(before, {field: after[field] for field in changed}):
        if edit.approval_key is not None:
            facet(edit.approval_key, {edit.field}, f"{edit.label} experiment '{experiment.name}'")
            changed.discard(edit.field)
    if changed:
        facet(
            lifecycle.UPDATE_APPROVAL_KEY,
            changed,
            f"Update experiment '{experiment.name}': {', '.join(sorted(changed))}",
        )


def update_log_activity(
    experiment: Experiment,
    *,
    user: User | None,
    activity: str,
    before: dict[str, Any],
    after: dict[str, Any],
    auto_orderings: dict[str, list[str]],
    flag_before: dict[str, Any],
) -> None:
    """Log the update under its activity name, leaving out bookkeeping nobody asked for:
    orderings that only followed metric changes, and running-time recommendations."""
    before, after = dict(before), dict(after)
    for field, auto_value in auto_orderings.items():
        if after[field] == auto_value:
            before[field] = after[field]
    for snapshot in (before, after):
        calc = snapshot.get("running_time_calculation")
        if isinstance(calc, dict):
            snapshot["running_time_calculation"] = {
                key: value for key, value in calc.items() if key not in RUNNING_TIME_RECOMMENDATIONS
            }
        if experiment.type == Experiment.Type.WEB:
            snapshot.pop("parameters", None)
    changes = changes_between(EXPERIMENT_ACTIVITY_SCOPE, before, after)
    changes += changes_between("FeatureFlag", flag_before, flag_snapshot(experiment.feature_flag))
    if not changes:
        return
    activity_log_record(
        project=experiment.project,
        user=user,
        scope=EXPERIMENT_ACTIVITY_SCOPE,
        item_id=experiment.id,
        activity=activity,
        name=experiment.name,
        changes=changes,
    )

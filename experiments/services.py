"""Writes of experiments and saved metrics.

Every function validates everything first, then writes the experiment, its flag (through
`flags/services.py`) and its activity inside one transaction with the rows it changes locked, so a
refused request changes nothing. Lifecycle transitions live in `experiments/lifecycle.py`.
"""

from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from rest_framework.exceptions import ValidationError

from accounts.models import Project, User
from activity.services import activity_log_record, changes_between, to_json_value
from approvals.gate import approval_gate
from approvals.observer import Facet, record, state
from experiments import lifecycle
from experiments.fields import TRACKED_FIELDS, UPDATABLE_FIELDS, plain_field_values
from experiments.flag_config import (
    DEFAULT_VARIANTS,
    changed_flag_config,
    flag_changes_for_config,
    new_flag_filters,
)
from experiments.lifecycle import EXPERIMENT_ACTIVITY_SCOPE
from experiments.metrics import (
    assign_metric_uuids,
    metric_uuids,
    refresh_fingerprints,
    synced_ordering,
    with_fingerprints,
)
from experiments.models import Experiment, ExperimentSavedMetric, ExperimentToSavedMetric
from experiments.saved_metrics import link_uuids_by_type, resolve_saved_metrics, sync_saved_metric_links
from experiments.selectors import experiment_links, forget_links, is_legacy
from experiments.validation import (
    CONTROL,
    GLOBAL_FILTER_PROPERTIES,
    split_parameters,
    validate_excluded_variant_keys,
    validate_flag_for_experiment,
    validate_no_duplicate_metric_uuids,
    validate_ordering_covers,
    validate_stats_config,
)
from flags.models import FeatureFlag
from flags.services import flag_create, flag_snapshot, flag_write
from holdouts.models import ExperimentHoldout

# Stands for a field the experiment does not have, so no sent value can equal it.
UNSET = object()
LEGACY_UPDATABLE_FIELDS = frozenset({"name", "description", "end_date", "deleted"})
RUNNING_TIME_RECOMMENDATIONS = ("recommended_running_time", "recommended_sample_size")

FLAG_EXISTS_WITH_CONFIG = (
    "A feature flag with key '{key}' already exists; the experiment links to it as-is, so its "
    "configuration cannot be set through parameters. Omit the flag configuration to reuse the existing "
    "flag, or edit the flag directly."
)
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


def validate_orderings(
    experiment_like: dict[str, Any], links: list[tuple[ExperimentSavedMetric, dict]]
) -> None:
    by_type = link_uuids_by_type(links)
    validate_ordering_covers(
        experiment_like["primary_metrics_ordered_uuids"],
        {*metric_uuids(experiment_like["metrics"]), *by_type["primary"]},
        "primary_metrics_ordered_uuids",
        "primary",
    )
    validate_ordering_covers(
        experiment_like["secondary_metrics_ordered_uuids"],
        {*metric_uuids(experiment_like["metrics_secondary"]), *by_type["secondary"]},
        "secondary_metrics_ordered_uuids",
        "secondary",
    )


def stats_config_with_defaults(stats_config: dict | None, project: Project) -> dict[str, Any]:
    result = dict(stats_config or {})
    if not result.get("method"):
        result["method"] = project.default_experiment_stats_method or "bayesian"
    if project.default_experiment_confidence_level is not None:
        level = float(project.default_experiment_confidence_level)
        bayesian = result.get("bayesian") or {}
        frequentist = result.get("frequentist") or {}
        if bayesian.get("ci_level") is None:
            result["bayesian"] = {**bayesian, "ci_level": level}
        if frequentist.get("alpha") is None:
            result["frequentist"] = {**frequentist, "alpha": round(1 - level, 10)}
    return result


def baseline_key(stats_config: dict | None) -> str:
    return (stats_config or {}).get("baseline_variant_key") or CONTROL


# A flag change made by an experiment write is gated by the experiment's keys first.
EXPERIMENT_FLAG_ACTION_KEYS = {"enable": ["experiment.launch"], "update": ["experiment.update"]}


# --- create ----------------------------------------------------------------------------------


@approval_gate(
    name="experiments.experiment_create",
    resource_type="experiment",
    resource=lambda kwargs: None,
    project=lambda kwargs: kwargs["project"],
    flag_action_keys=lambda kwargs: EXPERIMENT_FLAG_ACTION_KEYS,
)
def experiment_create(
    *,
    project: Project,
    user: User | None,
    name: str,
    feature_flag_key: str,
    type: str | None = Experiment.Type.PRODUCT,
    parameters: dict | None = None,
    excluded_variants: list[str] | None = None,
    metrics: list[dict] | None = None,
    metrics_secondary: list[dict] | None = None,
    stats_config: dict | None = None,
    exposure_criteria: dict | None = None,
    holdout: ExperimentHoldout | None = None,
    saved_metrics_ids: list[dict] | None = None,
    start_date: datetime | None = None,
    primary_metrics_ordered_uuids: list[str] | None = None,
    secondary_metrics_ordered_uuids: list[str] | None = None,
    only_count_matured_users: bool | None = None,
    **plain_fields: Any,
) -> Experiment:
    """Create an experiment and resolve its flag: an existing live flag with the key is reused as
    it is (it must have two variants including `control`); otherwise a new flag is created from
    the parameters (default control/test 50/50 at 100% rollout), active only if the experiment is
    created already started. The plain fields of `experiments/fields.py` (description, filters,
    conclusion, ...) are stored as given, or their defaults. All in one transaction: a failure
    leaves no flag behind."""
    stored_fields = plain_field_values(plain_fields)
    stored_parameters, flag_config = split_parameters(parameters)
    with transaction.atomic():
        saved_metrics = resolve_saved_metrics(project, saved_metrics_ids)
        seen = {
            (metric.query or {}).get("uuid")
            for metric in saved_metrics.values()
            if (metric.query or {}).get("uuid")
        }
        metrics = assign_metric_uuids(metrics, seen=seen)
        metrics_secondary = assign_metric_uuids(metrics_secondary, seen=seen)

        existing_flag = (
            FeatureFlag.objects.select_for_update()
            .filter(project=project, key=feature_flag_key, deleted=False)
            .first()
        )
        if existing_flag is not None:
            validate_flag_for_experiment(existing_flag.variants)
            if flag_config and changed_flag_config(flag_config, existing_flag):
                raise ValidationError({"parameters": [FLAG_EXISTS_WITH_CONFIG.format(key=feature_flag_key)]})
            variant_keys = existing_flag.variant_keys
        else:
            variant_keys = [
                variant["key"] for variant in flag_config.get("feature_flag_variants") or DEFAULT_VARIANTS
            ]

        validate_stats_config(stats_config, variant_keys)
        validate_excluded_variant_keys(excluded_variants or [], variant_keys, baseline_key(stats_config))
        stats_config = stats_config_with_defaults(stats_config, project)
        exposure_criteria = dict(exposure_criteria or {})
        if exposure_criteria.get("filterTestAccounts") is None:
            exposure_criteria["filterTestAccounts"] = True
        if only_count_matured_users is None:
            only_count_matured_users = project.default_only_count_matured_users
        fingerprint_inputs = {
            "start_date": start_date,
            "stats_config": stats_config,
            "exposure_criteria": exposure_criteria,
            "only_count_matured_users": only_count_matured_users,
            "excluded_variants": excluded_variants,
        }
        metrics = with_fingerprints(metrics, **fingerprint_inputs)
        metrics_secondary = with_fingerprints(metrics_secondary, **fingerprint_inputs)
        validate_no_duplicate_metric_uuids(metrics, metrics_secondary)

        links = [(saved_metrics[item["id"]], item.get("metadata") or {}) for item in saved_metrics_ids or []]
        link_uuids = link_uuids_by_type(links)
        if metrics is not None or link_uuids["primary"]:
            primary_metrics_ordered_uuids = synced_ordering(
                primary_metrics_ordered_uuids,
                added=[*metric_uuids(metrics), *link_uuids["primary"]],
                removed=set(),
            )
        if metrics_secondary is not None or link_uuids["secondary"]:
            secondary_metrics_ordered_uuids = synced_ordering(
                secondary_metrics_ordered_uuids,
                added=[*metric_uuids(metrics_secondary), *link_uuids["secondary"]],
                removed=set(),
            )

        if existing_flag is not None:
            flag = existing_flag
        else:
            continuity = flag_config.get("ensure_experience_continuity")
            flag = flag_create(
                project=project,
                user=user,
                key=feature_flag_key,
                name=f"Feature Flag for Experiment {name}",
                filters=new_flag_filters(flag_config, holdout),
                active=start_date is not None,
                ensure_experience_continuity=(
                    bool(continuity) if continuity is not None else project.flags_persistence_default
                ),
                creation_context=FeatureFlag.CreationContext.EXPERIMENTS,
            )

        experiment = Experiment.objects.create(
            project=project,
            created_by=user,
            feature_flag=flag,
            name=name,
            type=type or Experiment.Type.PRODUCT,
            parameters=stored_parameters,
            excluded_variants=excluded_variants,
            metrics=metrics if metrics is not None else [],
            metrics_secondary=metrics_secondary if metrics_secondary is not None else [],
            stats_config=stats_config,
            exposure_criteria=exposure_criteria,
            holdout=holdout,
            start_date=start_date,
            primary_metrics_ordered_uuids=primary_metrics_ordered_uuids,
            secondary_metrics_ordered_uuids=secondary_metrics_ordered_uuids,
            only_count_matured_users=only_count_matured_users,
            **stored_fields,
        )
        if experiment.type == Experiment.Type.WEB:
            experiment.variants = {
                variant["key"]: {"rollout_percentage": variant.get("rollout_percentage")}
                for variant in flag.variants
            }
            experiment.save(update_fields=["variants"])
        activity_log_record(
            project=project,
            user=user,
            scope=EXPERIMENT_ACTIVITY_SCOPE,
            item_id=experiment.id,
            activity="created",
            name=experiment.name,
        )
        if start_date is not None:
            record(
                Facet(
                    [lifecycle.APPROVAL_KEYS[lifecycle.Transition.LAUNCH]],
                    "experiment",
                    None,
                    f"Create experiment '{name}' already launched",
                    state({"start_date": None}),
                    state({"start_date": to_json_value(start_date)}),
                )
            )
        if saved_metrics_ids:
            sync_saved_metric_links(
                experiment, user=user, saved_metrics_ids=saved_metrics_ids, saved_metrics=saved_metrics
            )
        validate_orderings(
            {
                "metrics": experiment.metrics,
                "metrics_secondary": experiment.metrics_secondary,
                "primary_metrics_ordered_uuids": experiment.primary_metrics_ordered_uuids,
                "secondary_metrics_ordered_uuids": experiment.secondary_metrics_ordered_uuids,
            },
            links,
        )
    return experiment


# --- update: validate, plan, apply ----------------------------------------------------------


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
    with transaction.atomic():
        experiment, flag = lifecycle.lock_experiment_and_flag(experiment.pk)
        links = experiment_links(experiment)
        values = update_values_checked(experiment, flag, data, links)
        plan = update_plan(
            experiment, flag, values, links, update_feature_flag_params=update_feature_flag_params
        )
        update_apply(experiment, flag, plan, user=user)
    return experiment


def update_values_checked(
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
        flag_write(flag=flag, user=user, changes=plan.flag_changes)
    for field, value in plan.values.items():
        setattr(experiment, field, value)
    if lifecycle.patch_launches(plan.edits):
        lifecycle.start_running(experiment, flag, user=user, start_date=experiment.start_date)
    else:
        refresh_fingerprints(experiment)
    experiment.save()
    after = experiment_snapshot(experiment)
    lifecycle.record_patch_facets(experiment, before, after)
    update_log_activity(
        experiment,
        user=user,
        activity=lifecycle.patch_activity(plan.edits),
        before=before,
        after=after,
        auto_orderings=plan.auto_orderings,
        flag_before=flag_before,
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

"""Creating experiments, and the rules create and update share.

Every function validates everything first, then writes the experiment, its flag (through
`flags/services.py`) and its activity inside one transaction with the rows it changes locked, so a
refused request changes nothing. Lifecycle transitions live in `experiments/lifecycle.py`.
"""

from datetime import datetime
from typing import Any

from rest_framework.exceptions import ValidationError

from accounts.models import Project, User
from accounts.versions import atomic_moving_versions_once
from activity.services import activity_log_record, to_json_value
from approvals.gate import approval_gate
from experiments import lifecycle
from experiments.fields import plain_field_values
from experiments.flag_config import (
    DEFAULT_VARIANTS,
    changed_flag_config,
    new_flag_filters,
)
from experiments.lifecycle import EXPERIMENT_ACTIVITY_SCOPE
from experiments.links import set_links_presence
from experiments.metrics import (
    assign_metric_uuids,
    metric_uuids,
    synced_ordering,
    with_fingerprints,
)
from experiments.models import Experiment, ExperimentSavedMetric
from experiments.saved_metrics import link_uuids_by_type, resolve_saved_metrics, sync_saved_metric_links
from experiments.validation import (
    CONTROL,
    split_parameters,
    validate_excluded_variant_keys,
    validate_flag_for_experiment,
    validate_no_duplicate_metric_uuids,
    validate_ordering_covers,
    validate_stats_config,
)
from flags.models import FeatureFlag
from flags.services import flag_create
from holdouts.models import ExperimentHoldout

FLAG_EXISTS_WITH_CONFIG = (
    "A feature flag with key '{key}' already exists; the experiment links to it as-is, so its "
    "configuration cannot be set through parameters. Omit the flag configuration to reuse the existing "
    "flag, or edit the flag directly."
)


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
    with atomic_moving_versions_once():
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
            lifecycle.report_experiment_facet(
                lifecycle.APPROVAL_KEYS[lifecycle.Transition.LAUNCH],
                None,
                f"Create experiment '{name}' already launched",
                {"start_date": None},
                {"start_date": to_json_value(start_date)},
            )
        if saved_metrics_ids:
            sync_saved_metric_links(
                experiment, user=user, saved_metrics_ids=saved_metrics_ids, saved_metrics=saved_metrics
            )
        set_links_presence(experiment, bool(saved_metrics_ids))
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

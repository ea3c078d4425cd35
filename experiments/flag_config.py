"""The experiment's view of its flag: the flag configuration `parameters` carries (variants,
rollout, payloads, aggregation, continuity), projected from the flag on read and turned into flag
filters on create and update. Pure functions; the flag itself is written by `flags/services.py`."""

from copy import deepcopy
from typing import Any

from experiments.validation import normalize_variants
from flags.models import FeatureFlag
from holdouts.models import ExperimentHoldout

DEFAULT_ROLLOUT_PERCENTAGE = 100


DEFAULT_VARIANTS = [
    {"key": "control", "name": "Control Group", "rollout_percentage": 50},
    {"key": "test", "name": "Test Variant", "rollout_percentage": 50},
]


def flag_config_projection(flag: FeatureFlag) -> dict[str, Any]:
    """The flag configuration as the experiment's `parameters` shows it on read."""
    filters = flag.filters or {}
    projected: dict[str, Any] = {
        "feature_flag_variants": [
            {**variant, "split_percent": variant.get("rollout_percentage")}
            if isinstance(variant, dict)
            else variant
            for variant in flag.variants
        ]
    }
    groups = filters.get("groups") or []
    if groups and isinstance(groups[0], dict) and groups[0].get("rollout_percentage") is not None:
        projected["rollout_percentage"] = groups[0]["rollout_percentage"]
    if filters.get("aggregation_group_type_index") is not None:
        projected["aggregation_group_type_index"] = filters["aggregation_group_type_index"]
    if filters.get("payloads"):
        projected["feature_flag_payloads"] = filters["payloads"]
    if flag.ensure_experience_continuity is not None:
        projected["ensure_experience_continuity"] = flag.ensure_experience_continuity
    return projected


def changed_flag_config(flag_config: dict[str, Any], flag: FeatureFlag) -> dict[str, Any]:
    """The part of `flag_config` that differs from the flag's current configuration: a client that
    sends back what it read is not asking for a change."""
    current = flag_config_projection(flag)
    current["feature_flag_variants"] = normalize_variants(current["feature_flag_variants"])
    changed = {}
    for key, value in flag_config.items():
        if key == "feature_flag_variants":
            if normalize_variants(value) != current["feature_flag_variants"]:
                changed[key] = value
        elif value != current.get(key):
            changed[key] = value
    return changed


def holdout_filter(holdout: ExperimentHoldout | None) -> dict[str, Any] | None:
    return holdout.flag_holdout_filter() if holdout is not None else None


def new_flag_filters(flag_config: dict[str, Any], holdout: ExperimentHoldout | None) -> dict[str, Any]:
    filters: dict[str, Any] = {
        "groups": [
            {
                "properties": [],
                "rollout_percentage": flag_config.get("rollout_percentage", DEFAULT_ROLLOUT_PERCENTAGE),
            }
        ],
        "multivariate": {"variants": flag_config.get("feature_flag_variants") or deepcopy(DEFAULT_VARIANTS)},
        "aggregation_group_type_index": flag_config.get("aggregation_group_type_index"),
        "holdout": holdout_filter(holdout),
    }
    if flag_config.get("feature_flag_payloads"):
        filters["payloads"] = flag_config["feature_flag_payloads"]
    return filters


def synced_flag_filters(
    current: dict[str, Any], flag_config: dict[str, Any], holdout: ExperimentHoldout | None
) -> dict[str, Any]:
    """The flag's filters after an experiment edit: sent configuration replaces the matching part
    (the rollout only in the first release condition), everything else is kept."""
    filters = deepcopy(current or {})
    if "feature_flag_variants" in flag_config:
        filters["multivariate"] = {
            "variants": flag_config["feature_flag_variants"] or deepcopy(DEFAULT_VARIANTS)
        }
    if flag_config.get("rollout_percentage") is not None:
        groups = filters.get("groups") or []
        if groups:
            filters["groups"] = [
                {**groups[0], "rollout_percentage": flag_config["rollout_percentage"]},
                *groups[1:],
            ]
        else:
            filters["groups"] = [{"properties": [], "rollout_percentage": flag_config["rollout_percentage"]}]
    if "aggregation_group_type_index" in flag_config:
        filters["aggregation_group_type_index"] = flag_config["aggregation_group_type_index"]
    if "feature_flag_payloads" in flag_config:
        filters["payloads"] = flag_config["feature_flag_payloads"] or {}
    filters["holdout"] = holdout_filter(holdout)
    return filters


def flag_changes_for_config(
    flag: FeatureFlag, flag_config: dict[str, Any], holdout: ExperimentHoldout | None
) -> dict[str, Any]:
    changes: dict[str, Any] = {"filters": synced_flag_filters(flag.filters, flag_config, holdout)}
    if "ensure_experience_continuity" in flag_config:
        changes["ensure_experience_continuity"] = bool(flag_config["ensure_experience_continuity"])
    return changes


RELEASE_TO_EVERYONE_DESCRIPTION = (
    "Added automatically when the experiment was ended to keep only one variant."
)


def shipped_filters(
    filters: dict[str, Any], variant_key: str, *, release_to_everyone: bool
) -> dict[str, Any]:
    """The flag filters that serve only `variant_key`: that variant at 100%, the others at 0%, in
    their order; release conditions kept (a catch-all group prepended with `release_to_everyone`);
    payloads, aggregation and the holdout kept."""
    groups = deepcopy(filters.get("groups") or [])
    if release_to_everyone:
        groups = [
            {"properties": [], "rollout_percentage": 100, "description": RELEASE_TO_EVERYONE_DESCRIPTION},
            *groups,
        ]
    variants = ((filters.get("multivariate") or {}).get("variants")) or []
    rewritten = {
        "aggregation_group_type_index": filters.get("aggregation_group_type_index"),
        "payloads": deepcopy(filters.get("payloads") or {}),
        "multivariate": {
            "variants": [
                {
                    "key": variant["key"],
                    "rollout_percentage": 100 if variant["key"] == variant_key else 0,
                    **({"name": variant["name"]} if variant.get("name") else {}),
                }
                for variant in variants
            ]
        },
        "groups": groups,
    }
    if filters.get("holdout") is not None:
        rewritten["holdout"] = deepcopy(filters["holdout"])
    return rewritten

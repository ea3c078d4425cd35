"""Validation of experiment input, with PostHog's messages.

Pure functions: each takes a value and raises `ValidationError` with the exact message PostHog
gives, or returns a normalized copy. Serializers call the shape checks (so errors carry the field
name as `attr`); services call the cross-field checks before anything is written.
"""

from copy import deepcopy
from datetime import datetime
from typing import Any

from rest_framework.exceptions import ValidationError

from experiments.metric_schema import check_actions_node, check_event_exposure_config
from flags.validation import VARIANT_KEY_INVALID

CONTROL = "control"
MAX_VARIANTS = 20
VALID_STATS_METHODS = ("bayesian", "frequentist")
RUNNING_TIME_CALCULATION_KEYS = (
    "minimum_detectable_effect",
    "recommended_running_time",
    "recommended_sample_size",
    "exposure_estimate_config",
)
FLAG_CONFIG_PARAMETER_KEYS = (
    "feature_flag_variants",
    "rollout_percentage",
    "aggregation_group_type_index",
    "feature_flag_payloads",
    "ensure_experience_continuity",
)
EXPOSURE_CONFIG_KINDS = ("ExperimentEventExposureConfig", "ActionsNode")
ERROR_VALUE_MAX_LENGTH = 80

END_BEFORE_START = "End date must be after start date"
TOO_MANY_VARIANTS = "Feature flag variants must be less than 21"
TOO_FEW_VARIANTS = "Feature flag must have at least 2 variants (control and at least one test variant)"
FLAG_WITHOUT_CONTROL = "Feature flag must have a variant with key 'control'"
VARIANT_WITHOUT_PERCENTAGE = (
    "Each variant must include split_percent (recommended) or rollout_percentage (deprecated)."
)
EXCLUDED_VARIANTS_NOT_STRINGS = "excluded_variants must be a list of strings"
AT_LEAST_ONE_TEST_VARIANT = "at least one test variant must remain in analysis"
SAVED_METRICS_NOT_A_LIST = "Saved metrics must be a list"
SAVED_METRIC_NOT_AN_OBJECT = "Saved metric must be an object"
SAVED_METRIC_WITHOUT_ID = "Saved metric must have an id"
SAVED_METRIC_METADATA_NOT_AN_OBJECT = "Metadata must be an object"
SAVED_METRIC_METADATA_WITHOUT_TYPE = "Metadata must have a type key"
SAVED_METRIC_NOT_IN_PROJECT = "Saved metric does not exist or does not belong to this project"
RUNNING_TIME_NOT_AN_OBJECT = "running_time_calculation must be an object"
EXPOSURE_ESTIMATE_NOT_AN_OBJECT = "exposure_estimate_config must be an object"
GLOBAL_FILTER_PROPERTIES = "Experiments do not support global filter properties"
EXPOSURE_CONFIG_HINT = (
    "Expected either an event-based config like "
    "{'kind': 'ExperimentEventExposureConfig', 'event': '<event_name>', 'properties': []} "
    "or an action-based config like {'kind': 'ActionsNode', 'id': <action_id>}."
)
ORDERING_BUG_SUFFIX = "This is likely a frontend bug - please refresh and try again."


def safe_repr(value: object) -> str:
    """A bounded rendering of user input for error messages."""
    rendered = repr(value)
    if len(rendered) > ERROR_VALUE_MAX_LENGTH:
        return rendered[:ERROR_VALUE_MAX_LENGTH] + "...(truncated)"
    return rendered


def validate_date_range(start_date: datetime | None, end_date: datetime | None) -> None:
    if start_date and end_date and start_date >= end_date:
        raise ValidationError(END_BEFORE_START)


def normalize_variants(variants: list[Any]) -> list[Any]:
    """PostHog's input normalization: a case-insensitive `control` becomes `control` (only when no
    exact `control` exists, so two keys never collapse into one), and `split_percent` replaces
    `rollout_percentage`. Returns new objects; the input is untouched."""
    variants = deepcopy(variants)
    keys = {variant.get("key") for variant in variants if isinstance(variant, dict)}
    if CONTROL not in keys:
        for variant in variants:
            key = variant.get("key") if isinstance(variant, dict) else None
            if isinstance(key, str) and key.lower() == CONTROL:
                variant["key"] = CONTROL
                break
    for variant in variants:
        if isinstance(variant, dict) and "split_percent" in variant:
            variant["rollout_percentage"] = variant.pop("split_percent")
    return variants


def validate_parameter_variants(variants: Any) -> list[dict[str, Any]]:
    """`parameters.feature_flag_variants`: shape, count and the required `control` variant."""
    if not isinstance(variants, list):
        raise ValidationError("feature_flag_variants must be a list")
    for index, variant in enumerate(variants):
        if not isinstance(variant, dict):
            raise ValidationError(f"Feature flag variant at index {index} must be an object")
        if "key" not in variant:
            raise ValidationError(f"Feature flag variant at index {index} must have a 'key' field")
        if not isinstance(variant["key"], str) or not variant["key"]:
            raise ValidationError(VARIANT_KEY_INVALID)
    for variant in variants:
        if "split_percent" not in variant and "rollout_percentage" not in variant:
            raise ValidationError(VARIANT_WITHOUT_PERCENTAGE)
    normalized = normalize_variants(variants)
    if len(normalized) > MAX_VARIANTS:
        raise ValidationError(TOO_MANY_VARIANTS)
    if normalized:
        if len(normalized) < 2:
            raise ValidationError(TOO_FEW_VARIANTS)
        keys = [variant["key"] for variant in normalized]
        if CONTROL not in keys:
            raise ValidationError(
                "Feature flag variants must contain a variant with key 'control' "
                f"(lowercase, exactly). Got keys: {keys}. Rename the baseline variant's "
                "'key' to 'control'."
            )
    return normalized


def validated_parameters(parameters: Any) -> Any:
    """`parameters` with the flag variants it carries checked (shape, count, `control`) and
    normalized. The serializer calls it, so the check runs once per request."""
    if not isinstance(parameters, dict) or "feature_flag_variants" not in parameters:
        return parameters
    return {
        **parameters,
        "feature_flag_variants": validate_parameter_variants(parameters["feature_flag_variants"]),
    }


def split_parameters(parameters: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Split `parameters` (as `validated_parameters` left them) into what the experiment stores and
    the flag configuration it carries.

    The flag is the source of truth for variants, rollout, aggregation, payloads and continuity,
    so those keys are applied to the flag and never stored on the experiment. Variants are
    normalized again (it is idempotent) for calls recorded before they were normalized on the way in."""
    if not isinstance(parameters, dict):
        return parameters, {}
    stored = {key: value for key, value in parameters.items() if key not in FLAG_CONFIG_PARAMETER_KEYS}
    flag_config = {key: parameters[key] for key in FLAG_CONFIG_PARAMETER_KEYS if key in parameters}
    if "feature_flag_variants" in flag_config:
        flag_config["feature_flag_variants"] = normalize_variants(flag_config["feature_flag_variants"])
    return stored, flag_config


def validate_flag_for_experiment(variants: list[dict[str, Any]]) -> None:
    """An existing flag an experiment runs on needs at least two variants including `control`."""
    if len(variants) < 2:
        raise ValidationError(TOO_FEW_VARIANTS)
    if CONTROL not in [variant.get("key") for variant in variants if isinstance(variant, dict)]:
        raise ValidationError(FLAG_WITHOUT_CONTROL)


def validate_running_time_calculation(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise ValidationError(RUNNING_TIME_NOT_AN_OBJECT)
    unknown = set(value) - set(RUNNING_TIME_CALCULATION_KEYS)
    if unknown:
        raise ValidationError(f"running_time_calculation got unknown keys: {sorted(unknown)}")
    for key in RUNNING_TIME_CALCULATION_KEYS[:3]:
        number = value.get(key)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)):
            raise ValidationError(f"{key} must be a number")
    estimate = value.get("exposure_estimate_config")
    if estimate is not None and not isinstance(estimate, dict):
        raise ValidationError(EXPOSURE_ESTIMATE_NOT_AN_OBJECT)


def validate_excluded_variants_shape(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(EXCLUDED_VARIANTS_NOT_STRINGS)


def validate_excluded_variant_keys(excluded: list[str], variant_keys: list[str], baseline_key: str) -> None:
    """Excluded variants checked against the flag's variants (no need to re-send them)."""
    if not excluded:
        return
    holdout_keys = {key for key in excluded if key.startswith("holdout-")}
    if holdout_keys:
        raise ValidationError(f"cannot exclude holdout pseudo-variants: {sorted(holdout_keys)}")
    if baseline_key in excluded:
        raise ValidationError(f"baseline variant cannot be excluded ('{baseline_key}')")
    unknown = set(excluded) - set(variant_keys)
    if unknown:
        raise ValidationError(f"unknown variants for this experiment: {sorted(unknown)}")
    if not set(variant_keys) - set(excluded) - {baseline_key}:
        raise ValidationError(AT_LEAST_ONE_TEST_VARIANT)


def validate_stats_config(stats_config: Any, variant_keys: list[str] | None) -> None:
    if not stats_config:
        return
    if not isinstance(stats_config, dict):
        raise ValidationError("stats_config must be an object")
    method = stats_config.get("method")
    if method is not None and method not in VALID_STATS_METHODS:
        raise ValidationError(
            f"Invalid stats method: '{method}'. Must be one of: {', '.join(sorted(VALID_STATS_METHODS))}"
        )
    baseline = stats_config.get("baseline_variant_key")
    if baseline is not None and variant_keys and baseline not in variant_keys:
        raise ValidationError(
            f"Invalid baseline_variant_key: '{baseline}'. Must be one of: {', '.join(sorted(variant_keys))}"
        )


def validate_exposure_criteria(exposure_criteria: Any) -> None:
    if exposure_criteria is None:
        return
    if not isinstance(exposure_criteria, dict):
        raise ValidationError(
            f"exposure_criteria must be an object, got {type(exposure_criteria).__name__}. "
            "Expected shape: {'filterTestAccounts': <bool>, 'exposure_config': <object>}."
        )
    if "filterTestAccounts" in exposure_criteria:
        value = exposure_criteria["filterTestAccounts"]
        if not isinstance(value, bool):
            raise ValidationError(
                f"exposure_criteria.filterTestAccounts must be a boolean, got "
                f"{type(value).__name__}: {safe_repr(value)}."
            )
    if "exposure_config" in exposure_criteria:
        config = exposure_criteria["exposure_config"]
        if not isinstance(config, dict):
            raise ValidationError(
                f"exposure_criteria.exposure_config must be an object, got "
                f"{type(config).__name__}. {EXPOSURE_CONFIG_HINT}"
            )
        kind = config.get("kind", "ExperimentEventExposureConfig")
        if kind not in EXPOSURE_CONFIG_KINDS:
            raise ValidationError(
                f"exposure_criteria.exposure_config.kind must be one of "
                f"{list(EXPOSURE_CONFIG_KINDS)}, got {safe_repr(kind)}. {EXPOSURE_CONFIG_HINT}"
            )
        model = "ActionsNode" if kind == "ActionsNode" else "ExperimentEventExposureConfig"
        errors = (
            check_actions_node(config, (model,))
            if kind == "ActionsNode"
            else check_event_exposure_config(config, (model,))
        )
        if errors:
            raise ValidationError(
                f"Invalid exposure_criteria.exposure_config (kind={safe_repr(kind)}): {errors}. {EXPOSURE_CONFIG_HINT}"
            )


def validate_no_duplicate_metric_uuids(*metric_lists: list | None) -> None:
    seen: set[str] = set()
    for metrics in metric_lists:
        for metric in metrics or []:
            uuid = metric.get("uuid") if isinstance(metric, dict) else None
            if uuid is None:
                continue
            if uuid in seen:
                raise ValidationError(
                    f"Duplicate metric UUID: '{uuid}'. Each metric must have a unique UUID."
                )
            seen.add(uuid)


def validate_saved_metrics_ids_shape(saved_metrics_ids: Any) -> None:
    if saved_metrics_ids is None:
        return
    if not isinstance(saved_metrics_ids, list):
        raise ValidationError(SAVED_METRICS_NOT_A_LIST)
    for item in saved_metrics_ids:
        if not isinstance(item, dict):
            raise ValidationError(SAVED_METRIC_NOT_AN_OBJECT)
        if "id" not in item:
            raise ValidationError(SAVED_METRIC_WITHOUT_ID)
        if "metadata" in item and not isinstance(item["metadata"], dict):
            raise ValidationError(SAVED_METRIC_METADATA_NOT_AN_OBJECT)
        if "metadata" in item and "type" not in item["metadata"]:
            raise ValidationError(SAVED_METRIC_METADATA_WITHOUT_TYPE)
        if isinstance(item["id"], bool) or not isinstance(item["id"], int):
            raise ValidationError(SAVED_METRIC_NOT_IN_PROJECT)


def validate_ordering_covers(ordering: list[str] | None, expected: set[str], field: str, kind: str) -> None:
    """[PREV] rule: an ordering array names every metric of its kind."""
    if not expected:
        return
    if ordering is None:
        raise ValidationError(f"{field} is null but {kind} metrics exist. {ORDERING_BUG_SUFFIX}")
    missing = expected - set(ordering)
    if missing:
        raise ValidationError(f"{field} is missing UUIDs: {sorted(missing)}. {ORDERING_BUG_SUFFIX}")


def validate_ordering_shape(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValidationError("Metric ordering must be a list of metric UUID strings.")

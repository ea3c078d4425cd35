"""Holdout filters: a non-empty list of release conditions, each with a rollout between 0 and 100."""

from typing import Any

from rest_framework.exceptions import ValidationError

from flags.validation import is_number

FILTERS_NOT_A_LIST = "Filters must be a list of release conditions."
FILTERS_EMPTY = "Filters must not be empty."
FILTER_NOT_AN_OBJECT = "Each filter must be an object."
FILTER_PROPERTIES_NOT_A_LIST = "Filter properties must be a list."
ROLLOUT_REQUIRED = "Rollout percentage must be present."
ROLLOUT_OUT_OF_RANGE = "Rollout percentage must be between 0 and 100."


def validate_holdout_filters(filters: Any) -> list[dict[str, Any]]:
    if not isinstance(filters, list):
        raise ValidationError(FILTERS_NOT_A_LIST)
    if not filters:
        raise ValidationError(FILTERS_EMPTY)
    for item in filters:
        if not isinstance(item, dict):
            raise ValidationError(FILTER_NOT_AN_OBJECT)
        if item.get("rollout_percentage") is None:
            raise ValidationError(ROLLOUT_REQUIRED)
        rollout = item["rollout_percentage"]
        if not is_number(rollout) or not 0 <= rollout <= 100:
            raise ValidationError(ROLLOUT_OUT_OF_RANGE)
        if "properties" in item and not isinstance(item["properties"], list):
            raise ValidationError(FILTER_PROPERTIES_NOT_A_LIST)
    return filters


def with_holdout_variant(filters: list[dict[str, Any]], holdout_id: int) -> list[dict[str, Any]]:
    """Every condition's `variant` names the holdout, whatever the client sent."""
    return [{**item, "variant": f"holdout-{holdout_id}"} for item in filters]

"""The one validation path for feature flag keys and filters, used by every writer of a flag
(the flags API, experiment create/update, ship, duplicate, holdout changes).

Messages are PostHog's where PostHog defines them. Validation returns a normalized copy and never
mutates its input.
"""

import json
import re
from copy import deepcopy
from numbers import Number
from typing import Any

from rest_framework.exceptions import ValidationError

from accounts.models import Project
from experiments_api.ids import id_from_text
from experiments_api.parsers import json_value
from flags.hooks import holdout_exists
from flags.models import Cohort, FeatureFlag
from flags.operators import PROPERTY_OPERATORS
from flags.regex import flag_regex_is_valid

FLAG_KEY_PATTERN = re.compile(r"^[a-zA-Z0-9_-]+$")
FLAG_KEY_MAX_LENGTH = 400

FLAG_KEY_INVALID = "Only letters, numbers, hyphens (-) & underscores (_) are allowed."
FLAG_KEY_BLANK = "This field may not be blank."
FLAG_KEY_TOO_LONG = f"Ensure this field has no more than {FLAG_KEY_MAX_LENGTH} characters."
FLAG_KEY_TAKEN = "There is already a feature flag with this key."
FILTERS_NOT_AN_OBJECT = "Filters must be an object."
GROUPS_REQUIRED = "Feature flags must have at least one condition set (group)."
GROUPS_NOT_A_LIST = "Filters are not valid (groups must be a list of condition sets)."
GROUP_NOT_AN_OBJECT = "Filters are not valid (each condition set must be an object)."
GROUP_PROPERTIES_NOT_A_LIST = "Filters are not valid (properties must be a list)."
GROUP_ROLLOUT_INVALID = (
    "Filters are not valid (rollout_percentage must be a number between 0 and 100, or null)."
)
GROUP_VARIANT_UNKNOWN = "Filters are not valid (variant override does not exist)"
PROPERTY_NOT_AN_OBJECT = "Filters are not valid (each property must be an object with a key)."
PERSON_PROPERTIES_ONLY = "Filters are not valid (can only use person, cohort, and flag properties)"
GROUP_PROPERTIES_ONLY = "Filters are not valid (can only use group properties)"
FLAG_PROPERTY_OPERATOR = "Flag properties must use the 'flag_evaluates_to' operator"
MULTIVARIATE_NOT_AN_OBJECT = (
    "Invalid variant definitions: multivariate must be an object with a list of variants."
)
VARIANT_NOT_AN_OBJECT = "Invalid variant definitions: each variant must be an object with a key."
VARIANT_KEY_INVALID = "Invalid variant definitions: variant keys must be non-empty strings."
VARIANT_KEYS_NOT_UNIQUE = "Invalid variant definitions: Variant keys must be unique."
VARIANT_ROLLOUT_INVALID = (
    "Invalid variant definitions: rollout_percentage must be an integer between 0 and 100."
)
VARIANTS_MUST_SUM_TO_100 = "Invalid variant definitions: Variant rollout percentages must sum to 100."
PAYLOADS_NOT_A_DICT = "Payloads must be passed as a dictionary"
PAYLOAD_NOT_JSON = "Payload value is not valid JSON"
PAYLOAD_KEYS_MULTIVARIATE = "Payload keys must match a variant key for multivariate flags"
PAYLOAD_KEYS_BOOLEAN = "Payload keys must be 'true' for boolean flags"
AGGREGATION_INDEX_INVALID = "aggregation_group_type_index must be null or an integer between 0 and 4."
HOLDOUT_INVALID = (
    "Filters are not valid (holdout must be null or an object with an integer id and exclusion_percentage)."
)
HOLDOUT_DOES_NOT_EXIST = "Filters are not valid (holdout does not exist in this project)."

REGEX_NOT_SUPPORTED = (
    "Invalid value for operator {operator}: the pattern is not a regular expression this server can match "
    "(RE2 syntax: no backreferences or lookaround)."
)
UNKNOWN_OPERATOR = "Filters are not valid (unknown property operator: {operator})."
MAX_PROPERTY_VALUES = 1000
MAX_GROUP_TYPE_INDEX = 4
STRING_VALUE_OPERATORS = ("regex", "icontains", "not_regex", "not_icontains", "gte", "lte", "gt", "lt")
COHORT_ONLY_OPERATORS = ("in", "not_in")


def is_number(value: Any) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


def cohort_id_of(value: Any) -> int | None:
    """The cohort id a reference names that evaluation can resolve: an integer or a string of digits
    (within the id range). Anything else (1.5, "1e3", true) names no cohort, rather than being
    truncated into one at validation while evaluation (which matches the id as text) never finds it."""
    if isinstance(value, bool):
        return None
    return value if isinstance(value, int) else id_from_text(value)


def validate_flag_key(key: Any, *, project: Project, exclude_flag_id: int | None = None) -> str:
    """A flag key: non-blank, PostHog's character set, unique among the project's live flags."""
    if not isinstance(key, str) or not key.strip():
        raise ValidationError(FLAG_KEY_BLANK, code="blank")
    if len(key) > FLAG_KEY_MAX_LENGTH:
        raise ValidationError(FLAG_KEY_TOO_LONG, code="max_length")
    if not FLAG_KEY_PATTERN.match(key):
        raise ValidationError(FLAG_KEY_INVALID, code="invalid_key")
    taken = FeatureFlag.objects.filter(project=project, key=key, deleted=False)
    if exclude_flag_id is not None:
        taken = taken.exclude(pk=exclude_flag_id)
    if taken.exists():
        raise ValidationError(FLAG_KEY_TAKEN, code="unique")
    return key


def validate_variants(multivariate: Any) -> list[dict[str, Any]]:
    """`multivariate.variants`: objects with unique string keys and integer rollouts summing to 100."""
    if multivariate is None:
        return []
    if not isinstance(multivariate, dict) or not isinstance(multivariate.get("variants", []), list):
        raise ValidationError(MULTIVARIATE_NOT_AN_OBJECT)
    variants = multivariate.get("variants") or []
    keys: list[str] = []
    for variant in variants:
        if not isinstance(variant, dict) or "key" not in variant:
            raise ValidationError(VARIANT_NOT_AN_OBJECT)
        if not isinstance(variant["key"], str) or not variant["key"]:
            raise ValidationError(VARIANT_KEY_INVALID)
        rollout = variant.get("rollout_percentage", 0)
        if not isinstance(rollout, int) or isinstance(rollout, bool) or not 0 <= rollout <= 100:
            raise ValidationError(VARIANT_ROLLOUT_INVALID)
        keys.append(variant["key"])
    if len(set(keys)) != len(keys):
        raise ValidationError(VARIANT_KEYS_NOT_UNIQUE)
    if variants and sum(variant.get("rollout_percentage", 0) for variant in variants) != 100:
        raise ValidationError(VARIANTS_MUST_SUM_TO_100, code="invalid_input")
    return variants


def validate_property(prop: Any, *, aggregation_group_type_index: int | None, project: Project) -> None:
    if not isinstance(prop, dict) or not isinstance(prop.get("key"), str | int):
        raise ValidationError(PROPERTY_NOT_AN_OBJECT)
    prop_type = prop.get("type", "person")
    operator = prop.get("operator") or "exact"
    if not isinstance(operator, str) or operator not in PROPERTY_OPERATORS | {
        "in",
        "not_in",
        "flag_evaluates_to",
    }:
        raise ValidationError(UNKNOWN_OPERATOR.format(operator=str(operator)[:80]))
    value = prop.get("value")
    if aggregation_group_type_index is None:
        if prop_type not in ("person", "cohort", "flag"):
            raise ValidationError(PERSON_PROPERTIES_ONLY)
        if prop_type == "flag" and operator != "flag_evaluates_to":
            raise ValidationError(FLAG_PROPERTY_OPERATOR)
    elif prop_type != "group" or prop.get("group_type_index") != aggregation_group_type_index:
        raise ValidationError(GROUP_PROPERTIES_ONLY)
    if isinstance(value, list) and len(value) > MAX_PROPERTY_VALUES:
        raise ValidationError(
            f"Property group expressions of type {prop['key']} cannot contain more than {MAX_PROPERTY_VALUES} values."
        )
    if operator in STRING_VALUE_OPERATORS and not isinstance(value, str):
        raise ValidationError(f"Invalid value for operator {operator}: {value}", code="invalid_value")
    if operator in ("regex", "not_regex") and not flag_regex_is_valid(value):
        raise ValidationError(REGEX_NOT_SUPPORTED.format(operator=operator), code="invalid_value")
    if operator in COHORT_ONLY_OPERATORS and prop_type != "cohort":
        raise ValidationError(
            f"The '{operator}' operator is only valid for cohort properties, not '{prop_type}' properties.",
            code="invalid_operator",
        )
    if prop_type == "cohort":
        cohort_id = value if value is not None else prop.get("key")
        referenced = cohort_id_of(cohort_id)
        exists = (
            referenced is not None
            and Cohort.objects.filter(project=project, pk=referenced, deleted=False).exists()
        )
        if not exists:
            raise ValidationError(f"Cohort with id {cohort_id} does not exist", code="cohort_does_not_exist")


def normalize_payloads(payloads: Any, variant_keys: list[str], *, is_multivariate: bool) -> dict[str, str]:
    """Payloads keyed by variant (or `"true"` for boolean flags); object values become JSON strings."""
    if payloads is None:
        return {}
    if not isinstance(payloads, dict):
        raise ValidationError(PAYLOADS_NOT_A_DICT)
    normalized: dict[str, str] = {}
    for key, value in payloads.items():
        if isinstance(value, str):
            try:
                json_value(value)
            except ValueError:
                raise ValidationError(PAYLOAD_NOT_JSON) from None
            normalized[key] = value
        else:
            try:
                normalized[key] = json.dumps(value)
            except (TypeError, ValueError):
                raise ValidationError(PAYLOAD_NOT_JSON) from None
    if is_multivariate:
        if any(key not in variant_keys for key in normalized):
            raise ValidationError(PAYLOAD_KEYS_MULTIVARIATE)
    elif any(key != "true" for key in normalized):
        raise ValidationError(PAYLOAD_KEYS_BOOLEAN)
    return normalized


def validate_holdout_reference(holdout: Any, *, project: Project) -> dict[str, Any] | None:
    if holdout is None:
        return None
    if (
        not isinstance(holdout, dict)
        or not isinstance(holdout.get("id"), int)
        or isinstance(holdout.get("id"), bool)
        or not (holdout.get("exclusion_percentage") is None or is_number(holdout["exclusion_percentage"]))
    ):
        raise ValidationError(HOLDOUT_INVALID)
    if not holdout_exists(project, holdout["id"]):
        raise ValidationError(HOLDOUT_DOES_NOT_EXIST)
    return {"id": holdout["id"], "exclusion_percentage": holdout.get("exclusion_percentage")}


def validate_flag_filters(filters: Any, *, project: Project, is_create: bool) -> dict[str, Any]:
    """Validate a flag's `filters` and return a normalized copy.

    Keys this server does not interpret (e.g. `super_groups`) are kept as sent."""
    if not isinstance(filters, dict):
        raise ValidationError(FILTERS_NOT_AN_OBJECT)
    normalized = deepcopy(filters)
    groups = normalized.get("groups")
    if groups is None:
        groups = []
    if not isinstance(groups, list):
        raise ValidationError(GROUPS_NOT_A_LIST)
    if is_create and not groups:
        raise ValidationError(GROUPS_REQUIRED)
    normalized["groups"] = groups

    aggregation_group_type_index = normalized.get("aggregation_group_type_index")
    if aggregation_group_type_index is not None and (
        not isinstance(aggregation_group_type_index, int)
        or isinstance(aggregation_group_type_index, bool)
        or not 0 <= aggregation_group_type_index <= MAX_GROUP_TYPE_INDEX
    ):
        raise ValidationError(AGGREGATION_INDEX_INVALID)

    is_multivariate = bool(normalized.get("multivariate"))
    variants = validate_variants(normalized.get("multivariate"))
    variant_keys = [variant["key"] for variant in variants]

    for group in groups:
        if not isinstance(group, dict):
            raise ValidationError(GROUP_NOT_AN_OBJECT)
        properties = group.setdefault("properties", [])
        if not isinstance(properties, list):
            raise ValidationError(GROUP_PROPERTIES_NOT_A_LIST)
        rollout = group.get("rollout_percentage")
        if rollout is not None and (not is_number(rollout) or not 0 <= rollout <= 100):
            raise ValidationError(GROUP_ROLLOUT_INVALID)
        variant = group.get("variant")
        if variant and variant not in variant_keys:
            raise ValidationError(GROUP_VARIANT_UNKNOWN)
        for prop in properties:
            validate_property(
                prop, aggregation_group_type_index=aggregation_group_type_index, project=project
            )

    if "payloads" in normalized:
        normalized["payloads"] = normalize_payloads(
            normalized["payloads"], variant_keys, is_multivariate=is_multivariate
        )
    if "holdout" in normalized:
        normalized["holdout"] = validate_holdout_reference(normalized["holdout"], project=project)
    return normalized

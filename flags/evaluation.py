"""PostHog's feature flag evaluation, as pure functions (no database, no Django).

Given a flag definition (the same dict the local-evaluation endpoint serves to SDKs) and what a
request says about the user, decide the flag's value exactly as PostHog's flags service and its
SDKs do, so that a user gets the same variant whether an SDK evaluates locally or asks `/flags`:

- bucketing hashes are SHA-1 based, with the `"<key>."`, `"<key>." … "variant"` and `"holdout-"`
  inputs (`bucket_hash`);
- a flag's holdout is checked before its release conditions; conditions are tried in stored order
  and the first match wins; the variant comes from the cumulative lookup table unless the matched
  condition overrides it with an existing variant;
- the result carries PostHog's reason code (the best one when nothing matched) and the payload
  stored for the matched variant (or `"true"`).

Server semantics apply where an SDK would be "inconclusive": a property the request did not send
makes the filter not match (except `is_not_set`, which then matches), an unparsable filter value
does not match, a cohort whose definition is unknown (static) has no members.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from flags.regex import flag_regex_search

# The hash is the first 15 hex digits (60 bits) of the SHA-1, scaled into [0, 1] by 2^60 - 1.
HASH_HEX_DIGITS = 15
HASH_SCALE = float(0xFFFFFFFFFFFFFFF)
VARIANT_SALT = "variant"
HOLDOUT_PREFIX = "holdout-"
MAX_DISTINCT_ID_LENGTH = 200
MAX_PROPERTY_GROUP_DEPTH = 32


class ReasonCode(StrEnum):
    """Why a flag has its value, as PostHog's flags service reports it."""

    SUPER_CONDITION_VALUE = "super_condition_value"
    HOLDOUT_CONDITION_VALUE = "holdout_condition_value"
    CONDITION_MATCH = "condition_match"
    OUT_OF_ROLLOUT_BOUND = "out_of_rollout_bound"
    NO_CONDITION_MATCH = "no_condition_match"
    NO_GROUP_TYPE = "no_group_type"
    FLAG_DISABLED = "flag_disabled"
    MISSING_DEPENDENCY = "missing_dependency"


# When no condition matches, the reported reason is the highest-priority one any condition gave.
REASON_PRIORITY: dict[ReasonCode, int] = {
    ReasonCode.SUPER_CONDITION_VALUE: 6,
    ReasonCode.HOLDOUT_CONDITION_VALUE: 5,
    ReasonCode.CONDITION_MATCH: 4,
    ReasonCode.OUT_OF_ROLLOUT_BOUND: 3,
    ReasonCode.NO_CONDITION_MATCH: 2,
    ReasonCode.NO_GROUP_TYPE: 1,
    ReasonCode.FLAG_DISABLED: 0,
    ReasonCode.MISSING_DEPENDENCY: -1,
}

REASON_DESCRIPTIONS: dict[ReasonCode, str] = {
    ReasonCode.SUPER_CONDITION_VALUE: "Super condition value",
    ReasonCode.HOLDOUT_CONDITION_VALUE: "Holdout condition value",
    ReasonCode.OUT_OF_ROLLOUT_BOUND: "Out of rollout bound",
    ReasonCode.NO_CONDITION_MATCH: "No matching condition set",
    ReasonCode.NO_GROUP_TYPE: "No group type",
    ReasonCode.FLAG_DISABLED: "Feature flag is disabled",
    ReasonCode.MISSING_DEPENDENCY: "Flag cannot be evaluated due to missing dependency",
}


@dataclass(frozen=True)
class FlagResult:
    """One flag's outcome for one user: enabled or not, the variant, why, and the payload.

    `payload` is the stored payload (PostHog keeps JSON-encoded strings) for the matched variant,
    or for `"true"` on a boolean match; it is always None when the flag did not match.
    """

    key: str
    enabled: bool
    variant: str | None
    reason: ReasonCode
    condition_index: int | None = None
    payload: Any = None

    @property
    def value(self) -> bool | str:
        """What an SDK returns: the variant when there is one, else whether the flag is enabled."""
        return self.variant if self.variant else self.enabled

    @property
    def reason_description(self) -> str:
        if self.reason == ReasonCode.CONDITION_MATCH:
            return f"Matched condition set {(self.condition_index or 0) + 1}"
        return REASON_DESCRIPTIONS[self.reason]


@dataclass
class EvaluationContext:
    """What the request says about the user, plus the project data evaluation needs.

    `person_properties` should already include `distinct_id` (see `person_properties_for`).
    `group_type_mapping` maps a group type index as a string ("0") to its name ("company").
    `cohorts` maps a cohort id (string) to its property group; a cohort absent from it has no
    members here. `flags_by_key` lets flag-dependency filters evaluate other flags.
    """

    distinct_id: str
    person_properties: Mapping[str, Any] = field(default_factory=dict)
    groups: Mapping[str, Any] = field(default_factory=dict)
    group_properties: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    group_type_mapping: Mapping[str, str] = field(default_factory=dict)
    cohorts: Mapping[str, Any] = field(default_factory=dict)
    flags_by_key: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    device_id: str | None = None
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    # Results of flags already evaluated for this context, for flag dependencies; None = in progress.
    memo: dict[str, FlagResult | None] = field(default_factory=dict, init=False, repr=False)


def person_properties_for(distinct_id: str, properties: Mapping[str, Any] | None) -> dict[str, Any]:
    """The request's person properties plus `distinct_id`, the caller's own value winning (as SDKs do)."""
    merged = dict(properties or {})
    merged.setdefault("distinct_id", distinct_id)
    return merged


# --- hashing --------------------------------------------------------------------------------------


def bucket_hash(prefix: str, identifier: str, salt: str = "") -> float:
    """A uniform, deterministic number in [0, 1] for `prefix + identifier + salt`."""
    digest = hashlib.sha1(f"{prefix}{identifier}{salt}".encode()).hexdigest()
    return int(digest[:HASH_HEX_DIGITS], 16) / HASH_SCALE


def rollout_hash(flag_key: str, identifier: str) -> float:
    return bucket_hash(f"{flag_key}.", identifier)


def variant_hash(flag_key: str, identifier: str) -> float:
    return bucket_hash(f"{flag_key}.", identifier, VARIANT_SALT)


def holdout_hash(identifier: str) -> float:
    """Independent of the flag, so one holdout excludes the same users from every flag it covers."""
    return bucket_hash(HOLDOUT_PREFIX, identifier)


# --- flag structure -------------------------------------------------------------------------------


def _filters(flag: Mapping[str, Any]) -> Mapping[str, Any]:
    filters = flag.get("filters")
    return filters if isinstance(filters, Mapping) else {}


def flag_variants(flag: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    multivariate = _filters(flag).get("multivariate")
    variants = multivariate.get("variants") if isinstance(multivariate, Mapping) else None
    if not isinstance(variants, list):
        return []
    return [variant for variant in variants if isinstance(variant, Mapping)]


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def variant_lookup_table(flag: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """(variant key, lower bound inclusive, upper bound exclusive), accumulated in stored order.

    The bounds are accumulated as `previous + percentage / 100`, the very arithmetic the SDKs use,
    so floating-point edges land on the same side everywhere.
    """
    table = []
    lower = 0.0
    for variant in flag_variants(flag):
        percentage = _as_number(variant.get("rollout_percentage")) or 0.0
        upper = lower + percentage / 100
        table.append((str(variant.get("key")), lower, upper))
        lower = upper
    return table


def matching_variant(flag: Mapping[str, Any], identifier: str) -> str | None:
    """The variant whose range holds the user's variant hash; None when the shares sum below it."""
    table = variant_lookup_table(flag)
    if not table:
        return None
    hashed = variant_hash(str(flag.get("key")), identifier)
    for key, lower, upper in table:
        if lower <= hashed < upper:
            return key
    return None


def holdout_variant(flag: Mapping[str, Any], identifier: str) -> str | None:
    """`holdout-<id>` when the user is in the flag's holdout, else None.

    The exclusion percentage is clamped to [0, 100]; 100 holds out everyone without hashing, so a
    full holdout cannot miss on a hash boundary.
    """
    holdout = _filters(flag).get("holdout")
    if not isinstance(holdout, Mapping):
        return None
    holdout_id = holdout.get("id")
    raw_percentage = holdout.get("exclusion_percentage")
    if holdout_id is None or raw_percentage is None:
        return None
    try:
        percentage = min(max(float(raw_percentage), 0.0), 100.0)
    except (TypeError, ValueError):
        return None
    if math.isnan(percentage):
        return None
    if percentage != 100.0 and holdout_hash(identifier) > percentage / 100:
        return None
    return f"{HOLDOUT_PREFIX}{holdout_id}"


def payload_for(flag: Mapping[str, Any], lookup_key: str) -> Any:
    payloads = _filters(flag).get("payloads")
    if not isinstance(payloads, Mapping):
        return None
    return payloads.get(lookup_key)


# --- evaluation -----------------------------------------------------------------------------------


def evaluate_flag(flag: Mapping[str, Any], context: EvaluationContext) -> FlagResult:
    """Evaluate one flag definition for the user described by `context` (see the module docstring)."""
    key = str(flag.get("key"))
    known = context.memo.get(key)
    if known is not None:
        return known
    context.memo[key] = None
    result = _evaluate(flag, key, context)
    context.memo[key] = result
    return result


def evaluate_flags(flags: Iterable[Mapping[str, Any]], context: EvaluationContext) -> dict[str, FlagResult]:
    """Evaluate several flags for one user, sharing flag-dependency results between them."""
    return {str(flag.get("key")): evaluate_flag(flag, context) for flag in flags}


def _evaluate(flag: Mapping[str, Any], key: str, context: EvaluationContext) -> FlagResult:
    if not flag.get("active"):
        return FlagResult(key, False, None, ReasonCode.FLAG_DISABLED)

    filters = _filters(flag)
    aggregation = filters.get("aggregation_group_type_index")
    if aggregation is not None:
        group = _group_for(aggregation, context)
        if group is None:
            return FlagResult(key, False, None, ReasonCode.NO_GROUP_TYPE)
        identifier, properties = group
    else:
        identifier = _bucketing_identifier(flag, context)
        properties = context.person_properties

    if filters.get("feature_enrollment") is True:
        enrollment_key = f"$feature_enrollment/{key}"
        if enrollment_key in properties:
            enrolled = properties[enrollment_key] is True or properties[enrollment_key] == "true"
            payload = payload_for(flag, "true") if enrolled else None
            return FlagResult(key, enrolled, None, ReasonCode.SUPER_CONDITION_VALUE, 0, payload)

    held_out = holdout_variant(flag, identifier)
    if held_out is not None:
        return FlagResult(
            key, True, held_out, ReasonCode.HOLDOUT_CONDITION_VALUE, None, payload_for(flag, held_out)
        )

    return _match_conditions(flag, key, filters, aggregation, identifier, properties, context)


def _match_conditions(
    flag: Mapping[str, Any],
    key: str,
    filters: Mapping[str, Any],
    flag_aggregation: Any,
    identifier: str,
    properties: Mapping[str, Any],
    context: EvaluationContext,
) -> FlagResult:
    conditions = filters.get("groups")
    if not isinstance(conditions, list):
        conditions = []
    variant_keys = {str(variant.get("key")) for variant in flag_variants(flag)}
    best_reason, best_index = ReasonCode.NO_CONDITION_MATCH, None

    for index, condition in enumerate(conditions):
        if not isinstance(condition, Mapping):
            continue
        outcome = _condition_outcome(key, condition, flag_aggregation, identifier, properties, context)
        if isinstance(outcome, tuple):
            condition_identifier = outcome[1]
            override = condition.get("variant")
            if isinstance(override, str) and override in variant_keys:
                variant = override
            else:
                variant = matching_variant(flag, condition_identifier)
            payload = payload_for(flag, variant or "true")
            return FlagResult(key, True, variant, ReasonCode.CONDITION_MATCH, index, payload)
        # Report the highest-priority failure; on a tie, the earliest condition that gave it.
        if best_index is None or REASON_PRIORITY[outcome] > REASON_PRIORITY[best_reason]:
            best_reason, best_index = outcome, index
        if outcome == ReasonCode.OUT_OF_ROLLOUT_BOUND and filters.get("early_exit") is True:
            break

    return FlagResult(key, False, None, best_reason, best_index)


def _condition_outcome(
    flag_key: str,
    condition: Mapping[str, Any],
    flag_aggregation: Any,
    identifier: str,
    properties: Mapping[str, Any],
    context: EvaluationContext,
) -> tuple[bool, str] | ReasonCode:
    """(True, bucketing identifier) when the condition matches, else the reason it did not."""
    # A condition may aggregate by a different group than the flag (mixed person/group targeting).
    condition_aggregation = condition.get("aggregation_group_type_index", flag_aggregation)
    if condition_aggregation != flag_aggregation:
        if condition_aggregation is None:
            identifier = _bucketing_identifier({}, context)
            properties = context.person_properties
        else:
            group = _group_for(condition_aggregation, context)
            if group is None:
                return ReasonCode.NO_GROUP_TYPE
            identifier, properties = group

    filters = condition.get("properties")
    if isinstance(filters, list) and filters:
        for property_filter in filters:
            if not isinstance(property_filter, Mapping):
                return ReasonCode.NO_CONDITION_MATCH
            matched = _match_filter(property_filter, properties, context)
            if matched is None:
                return ReasonCode.MISSING_DEPENDENCY
            if not matched:
                return ReasonCode.NO_CONDITION_MATCH

    rollout = condition.get("rollout_percentage")
    if rollout is not None:
        percentage = _as_number(rollout)
        if percentage is None:
            return ReasonCode.NO_CONDITION_MATCH
        if percentage < 100 and rollout_hash(flag_key, identifier) > percentage / 100:
            return ReasonCode.OUT_OF_ROLLOUT_BOUND
    return True, identifier


def _group_for(aggregation: Any, context: EvaluationContext) -> tuple[str, Mapping[str, Any]] | None:
    """(group key, group properties) of the request's group of that type index, or None."""
    group_type = context.group_type_mapping.get(str(aggregation))
    if group_type is None or group_type not in context.groups:
        return None
    group_key = context.groups[group_type]
    if group_key is None or group_key == "":
        return None
    raw_properties = context.group_properties.get(group_type)
    properties = dict(raw_properties) if isinstance(raw_properties, Mapping) else {}
    properties.setdefault("$group_key", group_key)
    return str(group_key), properties


def _bucketing_identifier(flag: Mapping[str, Any], context: EvaluationContext) -> str:
    bucketing = flag.get("bucketing_identifier") or _filters(flag).get("bucketing_identifier")
    if bucketing == "device_id":
        device_id = context.device_id or context.person_properties.get("$device_id")
        if device_id:
            return str(device_id)
    return context.distinct_id


# --- property filters -----------------------------------------------------------------------------


def _match_filter(
    property_filter: Mapping[str, Any], properties: Mapping[str, Any], context: EvaluationContext
) -> bool | None:
    """Whether one filter matches; None when it depends on a flag that cannot be evaluated."""
    filter_type = property_filter.get("type")
    if filter_type == "cohort":
        return _match_cohort(property_filter, properties, context, depth=0)
    if filter_type == "flag":
        return _match_flag_dependency(property_filter, context)
    return match_property(property_filter, properties, now=context.now)


def _match_cohort(
    property_filter: Mapping[str, Any], properties: Mapping[str, Any], context: EvaluationContext, depth: int
) -> bool:
    operator = property_filter.get("operator") or "exact"
    group = context.cohorts.get(str(property_filter.get("value")))
    if group is None or depth > MAX_PROPERTY_GROUP_DEPTH or operator not in ("exact", "in", "not_in"):
        # Unknown (static) cohorts have no members on a server without a person store.
        member = False
    else:
        member = _match_property_group(group, properties, context, depth + 1)
    return not member if operator == "not_in" else member


def _match_property_group(
    group: Any, properties: Mapping[str, Any], context: EvaluationContext, depth: int
) -> bool:
    """An AND/OR tree of filters, as cohorts are stored. An empty group matches everyone."""
    if depth > MAX_PROPERTY_GROUP_DEPTH:
        return False  # a pathological stored definition must not exhaust the stack
    if not isinstance(group, Mapping) or not group:
        return True
    values = group.get("values")
    if not isinstance(values, list) or not values:
        return True
    is_and = group.get("type") != "OR"
    for entry in values:
        if not isinstance(entry, Mapping):
            matched = False
        elif "values" in entry or entry.get("type") in ("AND", "OR"):
            matched = _match_property_group(entry, properties, context, depth + 1)
        else:
            if entry.get("type") == "cohort":
                matched = _match_cohort(entry, properties, context, depth + 1)
            else:
                matched = bool(_match_filter(entry, properties, context))
            if entry.get("negation"):
                matched = not matched
        if matched != is_and:
            return matched
    return is_and


def _match_flag_dependency(property_filter: Mapping[str, Any], context: EvaluationContext) -> bool | None:
    """`flag_evaluates_to`: another flag's value for the same user. None when it is missing or cyclic."""
    if (property_filter.get("operator") or "exact") != "flag_evaluates_to":
        return False
    expected = property_filter.get("value")
    dependency_key = property_filter.get("key")
    if not dependency_key or expected is None:
        return False
    dependency = context.flags_by_key.get(str(dependency_key))
    if dependency is None:
        return None
    if context.memo.get(str(dependency_key), False) is None:
        return None  # a cycle: the flag is already being evaluated further up
    actual = evaluate_flag(dependency, context)
    if actual.reason == ReasonCode.MISSING_DEPENDENCY:
        return None
    value = actual.value
    if isinstance(value, str):
        return expected if isinstance(expected, bool) else value == expected
    return isinstance(expected, bool) and value == expected


def dependency_chain(flag_key: str, flags_by_key: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Flags to evaluate before `flag_key`'s value is known, in order, ending with `flag_key`.

    SDKs need this next to every flag-dependency filter. An empty list means a cycle.
    """
    chain: list[str] = []
    visiting: set[str] = set()

    def visit(key: str) -> bool:
        if key in chain:
            return True
        if key in visiting:
            return False
        visiting.add(key)
        for dependency in _flag_dependencies(flags_by_key.get(key)):
            if not visit(dependency):
                return False
        visiting.discard(key)
        chain.append(key)
        return True

    return chain if visit(flag_key) else []


def _flag_dependencies(flag: Mapping[str, Any] | None) -> list[str]:
    if flag is None:
        return []
    conditions = _filters(flag).get("groups")
    keys = []
    for condition in conditions if isinstance(conditions, list) else []:
        filters = condition.get("properties") if isinstance(condition, Mapping) else None
        for property_filter in filters if isinstance(filters, list) else []:
            if isinstance(property_filter, Mapping) and property_filter.get("type") == "flag":
                keys.append(str(property_filter.get("key")))
    return keys


# --- property operators ---------------------------------------------------------------------------

TEXT_OPERATORS = (
    "icontains",
    "not_icontains",
    "starts_with",
    "not_starts_with",
    "ends_with",
    "not_ends_with",
)
NUMERIC_OPERATORS = ("gt", "gte", "lt", "lte")
DATE_OPERATORS = ("is_date_before", "is_date_after")
SEMVER_COMPARISONS = ("semver_eq", "semver_neq", "semver_gt", "semver_gte", "semver_lt", "semver_lte")
SEMVER_RANGES = ("semver_tilde", "semver_caret", "semver_wildcard")
PROPERTY_OPERATORS = frozenset(
    ("exact", "is_not", "is_set", "is_not_set", "regex", "not_regex")
    + TEXT_OPERATORS
    + NUMERIC_OPERATORS
    + DATE_OPERATORS
    + SEMVER_COMPARISONS
    + SEMVER_RANGES
)

NUMERIC_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
RELATIVE_DATE = re.compile(r"^-?(?P<number>[0-9]+)(?P<unit>[a-z])$")
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class Unmatchable(Exception):
    """The filter or the value cannot be compared; the filter does not match."""


def match_property(
    property_filter: Mapping[str, Any],
    properties: Mapping[str, Any],
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> bool:
    """Whether one person or group property filter matches `properties` (SDK semantics, C.9).

    A missing property does not match (PostHog's server), except for `is_not_set`, which does.
    """
    operator = property_filter.get("operator") or "exact"
    if operator not in PROPERTY_OPERATORS:
        return False
    key = property_filter.get("key")
    if not isinstance(key, str) or key not in properties:
        return operator == "is_not_set"
    if operator in ("is_set", "is_not_set"):
        return operator == "is_set"
    expected = property_filter.get("value")
    actual = properties[key]
    try:
        return _compare(operator, expected, actual, now)
    except (Unmatchable, RecursionError):
        return False


def _compare(operator: str, expected: Any, actual: Any, now: Callable[[], dt.datetime]) -> bool:
    if operator in NUMERIC_OPERATORS:
        return _compare_numbers(operator, expected, actual)
    if operator in ("exact", "is_not"):
        equal = _exact_match(expected, actual)
        return equal if operator == "exact" else not equal
    if operator in TEXT_OPERATORS:
        return _compare_text(operator, expected, actual)
    if operator in ("regex", "not_regex"):
        found = flag_regex_search(str(expected), _to_text(actual))
        if found is None:
            return False  # an invalid pattern never matches, for either operator
        return found if operator == "regex" else not found
    if actual is None:
        return False
    if operator in DATE_OPERATORS:
        return _compare_dates(operator, expected, actual, now)
    return _compare_semver(operator, expected, actual)


def _to_text(value: Any) -> str:
    """A property value as text: strings as they are, anything else as compact JSON (SDK-compatible)."""
    return value if isinstance(value, str) else _json_text(value)


def _json_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(item) for item in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}:{_json_text(value[k])}" for k in sorted(value))
        return "{" + ",".join(items) + "}"
    raise Unmatchable


def _float_text(value: float) -> str:
    """Floats printed as PostHog's Rust service prints them (small exponents spelled out)."""
    if not math.isfinite(value):
        raise Unmatchable
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent_text = text.split("e")
    exponent = int(exponent_text)
    if -6 < exponent < 0:
        return format(Decimal(text), "f")
    return f"{mantissa}e{'+' if exponent >= 0 else ''}{exponent}"


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    if isinstance(value, list):
        return all(_truthy(item) for item in value)
    return False


def _booleanish(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return value.lower() in ("true", "false")
    if isinstance(value, list):
        return all(_booleanish(item) for item in value)
    return False


def _exact_match(expected: Any, actual: Any) -> bool:
    """Case-insensitive equality of the text forms; a list filter means "any of"."""
    actual_text = _to_text(actual).lower()
    if expected == []:
        return _truthy(actual)
    # Matching version 1: a boolean-looking filter compares truthiness, so "true" matches True.
    if _booleanish(expected):
        return _truthy(expected) == _truthy(actual)
    if isinstance(expected, list):
        return actual_text in {_to_text(candidate).lower() for candidate in expected}
    return _to_text(expected).lower() == actual_text


def _compare_text(operator: str, expected: Any, actual: Any) -> bool:
    haystack = _to_text(actual).translate(ASCII_LOWER)
    needle = _to_text(expected).translate(ASCII_LOWER)
    if operator.endswith("icontains"):
        found = needle in haystack
    elif operator.endswith("starts_with"):
        found = haystack.startswith(needle)
    else:
        found = haystack.endswith(needle)
    return not found if operator.startswith("not_") else found


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, str) and not NUMERIC_TEXT.fullmatch(value):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _compare_numbers(operator: str, expected: Any, actual: Any) -> bool:
    bound, number = _number(expected), _number(actual)
    if bound is None or number is None:
        return False
    if operator == "gt":
        return number > bound
    if operator == "gte":
        return number >= bound
    if operator == "lt":
        return number < bound
    return number <= bound


def parse_datetime(text: str) -> dt.datetime:
    """An ISO date or datetime (a trailing `Z` or ` UTC` allowed); naive values are UTC."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif text.upper().endswith(" UTC"):
        text = text[:-4] + "+00:00"
    elif re.fullmatch(r"\d{4}", text):
        today = dt.datetime.now(dt.UTC)
        try:
            return dt.datetime(int(text), today.month, today.day, tzinfo=dt.UTC)
        except ValueError as error:  # year 0000, or 29 February in a year without one
            raise Unmatchable from error
    text = re.sub(r" ([+-]\d{2}:\d{2})$", r"\1", text)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise Unmatchable from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _months_earlier(moment: dt.datetime, months: int) -> dt.datetime:
    """Calendar months back, clamping the day at every month passed (Mar 31 - 2 months = Jan 28)."""
    start = moment.year * 12 + moment.month - 1
    target = start - months
    year, month = divmod(target, 12)
    if not 1 <= year <= 9999:
        raise Unmatchable
    day = moment.day
    for index in range(start - 1, target - 1, -1):
        if day <= 28:
            break
        day = min(day, calendar.monthrange(index // 12, index % 12 + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _digits_to_int(digits: str) -> int:
    """Decimal digits as an integer. Python refuses to convert more than 4300 digits; no date or
    version has that many, so such text cannot be compared (rather than failing the request)."""
    try:
        return int(digits)
    except ValueError as error:
        raise Unmatchable from error


def parse_date_filter(value: Any, now: dt.datetime) -> dt.datetime:
    """A filter date: relative (`-7d`, `-1h`, `-2w`, `-3m`, `-1y`; N < 10000) or an ISO date."""
    text = str(value)
    relative = RELATIVE_DATE.search(text)
    if relative is None:
        return parse_datetime(text)
    number, unit = _digits_to_int(relative.group("number")), relative.group("unit")
    if number >= 10_000:
        raise Unmatchable
    if unit == "h":
        return now - dt.timedelta(hours=number)
    if unit == "d":
        return now - dt.timedelta(days=number)
    if unit == "w":
        return now - dt.timedelta(weeks=number)
    if unit == "m":
        return _months_earlier(now, number)
    if unit == "y":
        year = now.year - number
        if not 1 <= year <= 9999:
            raise Unmatchable
        leap_day = number > 0 and (now.month, now.day) == (2, 29)
        return now.replace(year=year, day=28 if leap_day else now.day)
    raise Unmatchable


def _compare_dates(operator: str, expected: Any, actual: Any, now: Callable[[], dt.datetime]) -> bool:
    if not isinstance(actual, str):
        raise Unmatchable
    bound = parse_date_filter(expected, now())
    moment = parse_datetime(actual)
    return moment < bound if operator == "is_date_before" else moment > bound


def _semver_part(part: str) -> int:
    """A numeric identifier; leading zeros are invalid (semver 2.0.0)."""
    if not part.isdigit() or not part.isascii() or (len(part) > 1 and part[0] == "0"):
        raise Unmatchable
    return _digits_to_int(part)


def parse_semver(value: Any) -> tuple[int, int, int]:
    """(major, minor, patch): `v` prefix stripped, pre-release/build dropped, missing parts 0."""
    text = str(value).strip().lstrip("vV").split("-")[0].split("+")[0]
    parts = text.split(".")
    major = _semver_part(parts[0])
    minor = _semver_part(parts[1]) if len(parts) > 1 and parts[1] else 0
    patch = _semver_part(parts[2]) if len(parts) > 2 and parts[2] else 0
    return major, minor, patch


def _semver_range(operator: str, value: Any) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    if operator == "semver_wildcard":
        parts = [
            part for part in str(value).strip().lstrip("vV").replace("*", "").rstrip(".").split(".") if part
        ]
        if not parts:
            raise Unmatchable
        numbers = [_semver_part(part) for part in parts[:3]]
        if len(numbers) == 1:
            return (numbers[0], 0, 0), (numbers[0] + 1, 0, 0)
        if len(numbers) == 2:
            return (numbers[0], numbers[1], 0), (numbers[0], numbers[1] + 1, 0)
        return (numbers[0], numbers[1], numbers[2]), (numbers[0], numbers[1], numbers[2] + 1)
    major, minor, patch = parse_semver(value)
    if operator == "semver_tilde":
        return (major, minor, patch), (major, minor + 1, 0)
    if major > 0:
        return (major, minor, patch), (major + 1, 0, 0)
    if minor > 0:
        return (major, minor, patch), (0, minor + 1, 0)
    return (major, minor, patch), (0, 0, patch + 1)


def _compare_semver(operator: str, expected: Any, actual: Any) -> bool:
    version = parse_semver(actual)
    if operator in SEMVER_RANGES:
        lower, upper = _semver_range(operator, expected)
        return lower <= version < upper
    bound = parse_semver(expected)
    return {
        "semver_eq": version == bound,
        "semver_neq": version != bound,
        "semver_gt": version > bound,
        "semver_gte": version >= bound,
        "semver_lt": version < bound,
        "semver_lte": version <= bound,
    }[operator]

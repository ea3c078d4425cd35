"""PostHog's feature flag evaluation, as pure functions (no database, no Django).

Given a flag definition (the same dict the local-evaluation endpoint serves to SDKs) and what a
request says about the user, decide the flag's value exactly as PostHog's flags service and its
SDKs do, so that a user gets the same variant whether an SDK evaluates locally or asks `/flags`:

- bucketing hashes are SHA-1 based, with the `"<key>."`, `"<key>." … "variant"` and `"holdout-"`
  inputs (`flags.bucketing`); property filters match with the SDKs' operators (`flags.operators`);
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

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flags.bucketing import (
    flag_filters,
    flag_variants,
    holdout_variant,
    matching_variant,
    payload_for,
    percentage_number,
    rollout_hash,
)
from flags.operators import match_property

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

    filters = flag_filters(flag)
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
        percentage = percentage_number(rollout)
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
    bucketing = flag.get("bucketing_identifier") or flag_filters(flag).get("bucketing_identifier")
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
    conditions = flag_filters(flag).get("groups")
    keys = []
    for condition in conditions if isinstance(conditions, list) else []:
        filters = condition.get("properties") if isinstance(condition, Mapping) else None
        for property_filter in filters if isinstance(filters, list) else []:
            if isinstance(property_filter, Mapping) and property_filter.get("type") == "flag":
                keys.append(str(property_filter.get("key")))
    return keys

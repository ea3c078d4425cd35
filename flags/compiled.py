"""Flag definitions compiled once per definitions version, so evaluating every flag for one user is
a tight loop.

`compile_flag` reads a definition once and keeps what does not depend on the user: whether it is
active, its conditions with their rollout thresholds, its variant table and payloads. Evaluating a
compiled flag then only hashes and matches the user's properties. Only the common shape is
compiled — person properties, rollouts, variants, overrides, payloads, holdouts; a flag using
groups, cohorts, flag dependencies, device-id bucketing or enrollment keeps the general evaluator
(`flags.evaluation.evaluate_flag`), so every answer is the one that evaluator gives (a differential
test holds the two together).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha1
from typing import Any

from flags.bucketing import HASH_SCALE, holdout_exclusion, holdout_hash, in_holdout, variant_hash
from flags.evaluation import REASON_PRIORITY, EvaluationContext, FlagResult, ReasonCode, evaluate_flag
from flags.operators import PropertyTest, property_test, property_test_identity


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    index: int
    property_tests: tuple[PropertyTest, ...]
    # `property_test_identity` of each test's filter, for sharing tests between flags.
    test_identities: tuple[str, ...]
    # None: everyone passes the rollout; else the smallest rollout-hash digest out of it
    # (`rollout_threshold`).
    rollout_threshold: bytes | None
    # A rollout that is not a finite number never matches (the general evaluator's rule).
    rollout_invalid: bool
    variant_override: str | None


@dataclass(frozen=True, slots=True)
class CompiledFlag:
    key: str
    definition: Mapping[str, Any]
    # False: evaluate with the general evaluator (a shape this module does not compile).
    compiled: bool
    active: bool = False
    conditions: tuple[CompiledCondition, ...] = ()
    variants: tuple[tuple[str, float, float], ...] = ()
    payloads: Mapping[str, Any] | None = None
    # (held-out variant, exclusion percentage), as `holdout_exclusion` reads it.
    holdout: tuple[str, float] | None = None
    early_exit: bool = False
    # `rollout_hash`'s input before the user's identifier, encoded once.
    hash_prefix: bytes = b""
    # Results by outcome (reason, condition index, variant): immutable, so shared by every user
    # with the same outcome instead of built per request.
    results: dict[tuple, FlagResult] = field(default_factory=dict)

    def evaluate(self, context: EvaluationContext) -> FlagResult:
        known = context.memo.get(self.key)
        if known is not None:
            return known
        if not self.compiled:
            return evaluate_flag(self.definition, context)
        result = self.evaluate_compiled(context, context.distinct_id.encode())
        context.memo[self.key] = result
        return result

    def evaluate_compiled(self, context: EvaluationContext, encoded_identifier: bytes) -> FlagResult:
        """The result for a compiled flag (`compiled` is True), with the user's distinct id
        encoded by the caller, once for every flag."""
        if not self.active:
            return self.disabled_result()
        identifier = context.distinct_id
        if self.holdout is not None and in_holdout(self.holdout[1], holdout_hash(identifier)):
            return self.held_out_result()
        properties = context.person_properties
        now = context.now
        best_reason, best_index = ReasonCode.NO_CONDITION_MATCH, None
        # The rollout hash depends on the flag and the user only: computed once, when first needed.
        digest = None
        for condition in self.conditions:
            outcome = None
            for matches in condition.property_tests:
                if not matches(properties, now):
                    outcome = ReasonCode.NO_CONDITION_MATCH
                    break
            if outcome is None:
                threshold = condition.rollout_threshold
                if condition.rollout_invalid:
                    outcome = ReasonCode.NO_CONDITION_MATCH
                elif threshold is not None:
                    if digest is None:
                        digest = sha1(self.hash_prefix + encoded_identifier).digest()
                    if digest >= threshold:
                        outcome = ReasonCode.OUT_OF_ROLLOUT_BOUND
            if outcome is None:
                override = condition.variant_override
                return self.matched(
                    condition.index, override if override is not None else self.variant_for(identifier)
                )
            if best_index is None or REASON_PRIORITY[outcome] > REASON_PRIORITY[best_reason]:
                best_reason, best_index = outcome, condition.index
            if outcome == ReasonCode.OUT_OF_ROLLOUT_BOUND and self.early_exit:
                break
        return self._result(best_reason, best_index, None, None)

    def matched(self, condition_index: int, variant: str | None) -> FlagResult:
        """The result of a match on the condition at `condition_index` giving `variant`."""
        return self._result(ReasonCode.CONDITION_MATCH, condition_index, variant, variant or "true")

    def disabled_result(self) -> FlagResult:
        """The result of an inactive flag, whoever asks."""
        return self._result(ReasonCode.FLAG_DISABLED, None, None, None)

    def held_out_result(self) -> FlagResult:
        """The result for a user in the flag's holdout (`holdout` is not None)."""
        held_out = self.holdout[0]
        return self._result(ReasonCode.HOLDOUT_CONDITION_VALUE, None, held_out, held_out)

    def decision(self, passing: Sequence[bool]) -> tuple[tuple[bytes, ...], tuple[Outcome, ...]]:
        """What `evaluate_compiled` answers for a user outside the holdout, as a function of the
        user's rollout digest alone, given which conditions pass their property tests (`passing`,
        one per condition): ascending `thresholds` and `outcomes` one longer, the outcome being
        `outcomes[bisect_right(thresholds, digest)]` (no thresholds: no hash needed).

        Conditions are tried in order and the first match wins, so a passing condition whose
        threshold is not above every earlier passing one's can never be the first to match; each
        one that can is a step. A digest past every step is out of every rollout it met: the reason
        is then the first passing condition's (out of rollout outranks no match)."""
        thresholds: list[bytes] = []
        outcomes: list[Outcome] = []
        first_passing = None
        for condition, passes in zip(self.conditions, passing, strict=True):
            if not passes or condition.rollout_invalid:
                continue
            if first_passing is None:
                first_passing = condition
            match = self._match_outcome(condition)
            threshold = condition.rollout_threshold
            if threshold is None:
                return tuple(thresholds), (*outcomes, match)
            if not thresholds or threshold > thresholds[-1]:
                thresholds.append(threshold)
                outcomes.append(match)
            if self.early_exit:  # out of the first rollout met is the answer
                break
        if first_passing is not None:
            fallback = self._result(ReasonCode.OUT_OF_ROLLOUT_BOUND, first_passing.index, None, None)
        else:
            first_index = self.conditions[0].index if self.conditions else None
            fallback = self._result(ReasonCode.NO_CONDITION_MATCH, first_index, None, None)
        return tuple(thresholds), (*outcomes, fallback)

    def _match_outcome(self, condition: CompiledCondition) -> Outcome:
        if condition.variant_override is not None:
            return self.matched(condition.index, condition.variant_override)
        if self.variants:
            return VariantPick(self, condition.index)
        return self.matched(condition.index, None)

    def _result(
        self, reason: ReasonCode, index: int | None, variant: str | None, payload_key: str | None
    ) -> FlagResult:
        """The result for this outcome; enabled (with the payload under `payload_key`) when the
        payload key is given."""
        outcome = (reason, index, variant)
        result = self.results.get(outcome)
        if result is None:
            enabled = payload_key is not None
            payload = self._payload(payload_key) if enabled else None
            result = FlagResult(self.key, enabled, variant, reason, index, payload)
            self.results[outcome] = result
        return result

    def holds(self, result: FlagResult) -> bool:
        """Whether `result` is one of this flag's shared results (kept, so alive, as long as the
        flag is), as opposed to one the general evaluator built for one request."""
        return self.results.get((result.reason, result.condition_index, result.variant)) is result

    def variant_for(self, identifier: str) -> str | None:
        """The variant the user's variant hash falls in (None without variants, or past them)."""
        if not self.variants:
            return None
        hashed = variant_hash(self.key, identifier)
        for variant_key, lower, upper in self.variants:
            if lower <= hashed < upper:
                return variant_key
        return None

    def _payload(self, lookup_key: str) -> Any:
        return self.payloads.get(lookup_key) if self.payloads is not None else None


@dataclass(frozen=True, slots=True)
class VariantPick:
    """A match on a multivariate flag's condition that has no variant override: which variant
    depends on the user's variant hash, a second hash taken only when this is the outcome."""

    flag: CompiledFlag
    condition_index: int

    def result(self, identifier: str) -> FlagResult:
        return self.flag.matched(self.condition_index, self.flag.variant_for(identifier))


# What a compiled flag answers once its rollout digest is placed (`CompiledFlag.decision`).
Outcome = FlagResult | VariantPick


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _compiled_condition(
    index: int, condition: Mapping[str, Any], variant_keys: set[str]
) -> CompiledCondition | None:
    """The condition compiled, or None when it needs the general evaluator."""
    if condition.get("aggregation_group_type_index") is not None:
        return None
    raw_properties = condition.get("properties")
    items: list[Mapping[str, Any]] = []
    if isinstance(raw_properties, list) and raw_properties:
        if any(
            not isinstance(item, Mapping) or item.get("type") in ("cohort", "flag") for item in raw_properties
        ):
            return None
        items = raw_properties
    raw_rollout = condition.get("rollout_percentage")
    percentage = _number(raw_rollout) if raw_rollout is not None else None
    threshold = rollout_threshold(percentage / 100) if percentage is not None and percentage < 100 else None
    override = condition.get("variant")
    return CompiledCondition(
        index,
        tuple(property_test(item) for item in items),
        tuple(property_test_identity(item) for item in items),
        threshold,
        raw_rollout is not None and percentage is None,
        override if isinstance(override, str) and override in variant_keys else None,
    )


def compile_flag(definition: Mapping[str, Any]) -> CompiledFlag:
    """One definition as served to SDKs, compiled (or marked for the general evaluator)."""
    key = str(definition.get("key"))
    general = CompiledFlag(key, definition, compiled=False)
    filters = definition.get("filters")
    filters = filters if isinstance(filters, Mapping) else {}
    if (
        filters.get("aggregation_group_type_index") is not None
        or filters.get("feature_enrollment") is True
        or (definition.get("bucketing_identifier") or filters.get("bucketing_identifier")) == "device_id"
    ):
        return general

    multivariate = filters.get("multivariate")
    raw_variants = multivariate.get("variants") if isinstance(multivariate, Mapping) else None
    variants = (
        [item for item in raw_variants if isinstance(item, Mapping)] if isinstance(raw_variants, list) else []
    )
    table = []
    lower = 0.0
    for variant in variants:
        # Accumulated exactly as the general evaluator and the SDKs do, so edges land alike.
        upper = lower + (_number(variant.get("rollout_percentage")) or 0.0) / 100
        table.append((str(variant.get("key")), lower, upper))
        lower = upper
    variant_keys = {str(variant.get("key")) for variant in variants}

    raw_conditions = filters.get("groups")
    conditions = []
    for index, condition in enumerate(raw_conditions if isinstance(raw_conditions, list) else []):
        if not isinstance(condition, Mapping):
            continue
        compiled = _compiled_condition(index, condition, variant_keys)
        if compiled is None:
            return general
        conditions.append(compiled)

    payloads = filters.get("payloads")
    return CompiledFlag(
        key,
        definition,
        compiled=True,
        active=bool(definition.get("active")),
        conditions=tuple(conditions),
        variants=tuple(table),
        payloads=payloads if isinstance(payloads, Mapping) else None,
        holdout=holdout_exclusion(definition),
        early_exit=filters.get("early_exit") is True,
        hash_prefix=f"{key}.".encode(),
    )


def rollout_threshold(rollout: float) -> bytes | None:
    """The smallest SHA-1 digest out of a rollout of `rollout` (0–1), or None when none is.

    `rollout_hash` is the digest's first 60 bits (its first 15 hex digits) divided by HASH_SCALE, and
    a user is out when it exceeds the rollout. The division only grows with those bits, so there is
    a least 60-bit value `first_out` whose hash exceeds the rollout, found here by bisection with the
    very same division; a digest is then out exactly when it compares (as bytes, big-endian) at
    least `first_out` followed by zero bits. Evaluation compares bytes instead of converting the
    hash to a float, with the same answer at every edge.
    """
    low, high = 0, 1 << 60
    while low < high:
        middle = (low + high) // 2
        if middle / HASH_SCALE > rollout:
            high = middle
        else:
            low = middle + 1
    if low == 1 << 60:
        return None
    return (low << 4).to_bytes(8, "big") + bytes(12)


def evaluate_compiled_flags(
    flags: Sequence[CompiledFlag], context: EvaluationContext
) -> dict[str, FlagResult]:
    """Evaluate several compiled flags for one user, sharing flag-dependency results between them."""
    memo = context.memo
    encoded_identifier = context.distinct_id.encode()
    results = {}
    for flag in flags:
        key = flag.key
        result = memo.get(key)
        if result is None:
            if flag.compiled:
                result = memo[key] = flag.evaluate_compiled(context, encoded_identifier)
            else:
                result = evaluate_flag(flag.definition, context)
        results[key] = result
    return results

"""Differential checks: wherever PostHog's Python SDK decides locally, this engine decides the same.

The SDK (a dev dependency) is the reference for local evaluation; a server that disagreed with it
would give a user one variant locally and another remotely.
"""

import itertools
import random

import pytest
from posthog.feature_flags import (
    InconclusiveMatchError,
    RequiresServerEvaluation,
    match_feature_flag_properties,
)
from posthog.feature_flags import match_property as sdk_match_property

from flags.evaluation import EvaluationContext, evaluate_flag, person_properties_for
from flags.operators import match_property

OPERATORS = [
    "exact", "is_not", "is_set", "is_not_set", "icontains", "not_icontains", "starts_with", "not_starts_with", "ends_with",
    "not_ends_with", "regex", "not_regex", "gt", "gte", "lt", "lte", "is_date_before", "is_date_after",
    "semver_eq", "semver_neq", "semver_gt", "semver_gte", "semver_lt", "semver_lte", "semver_tilde",
    "semver_caret", "semver_wildcard",
]  # fmt: skip
VALUES = [
    "us", "US", "Mexico", "mex", "1.2.3", "v1.10.0", "1.2.*", "01.2.3", "2024-01-01", "2023-12-31T23:59:59Z",
    "-30d", "-2y", "true", "false", "", "10", "9.5", "abc", "^u.a$", "[bad", "é", 10, 9.5, 0, -3, 1e-7, True,
    False, None, ["us", "ca"], ["true"], [],
]  # fmt: skip


@pytest.mark.parametrize("operator", OPERATORS)
def test_property_operators_agree_with_the_sdk(operator):
    decided = 0
    for expected, actual in itertools.product(VALUES, VALUES):
        rule = {"key": "prop", "operator": operator, "value": expected}
        try:
            reference = sdk_match_property(rule, {"prop": actual})
        except InconclusiveMatchError:
            continue
        decided += 1
        assert match_property(rule, {"prop": actual}) is reference, (expected, actual)
    assert decided > 0


def random_flag(rng: random.Random, key: str) -> dict:
    variants = []
    remaining = 100
    for name in ["control", "test", "third"][: rng.randint(0, 3)]:
        share = rng.choice([0, 10, 33, 50, remaining])
        share = min(share, remaining)
        variants.append({"key": name, "rollout_percentage": share})
        remaining -= share
    conditions = []
    for _ in range(rng.randint(0, 3)):
        condition = {"properties": [], "rollout_percentage": rng.choice([None, 0, 20, 50, 100])}
        if rng.random() < 0.5:
            condition["properties"].append(
                {"key": "plan", "operator": rng.choice(["exact", "is_not", "icontains"]), "value": "pro"}
            )
        if variants and rng.random() < 0.3:
            condition["variant"] = rng.choice([variant["key"] for variant in variants] + ["missing"])
        conditions.append(condition)
    filters = {"groups": conditions, "multivariate": {"variants": variants} if variants else None}
    if rng.random() < 0.4:
        filters["holdout"] = {"id": rng.randint(1, 9), "exclusion_percentage": rng.choice([0, 10, 35, 100])}
    return {"key": key, "active": True, "filters": filters}


def test_random_flags_agree_with_the_sdk():
    rng = random.Random(20261122)
    compared = 0
    for flag_number in range(150):
        flag = random_flag(rng, f"flag-{flag_number}")
        for user_number in range(40):
            distinct_id = f"user_{user_number}"
            properties = person_properties_for(distinct_id, {"plan": rng.choice(["pro", "free", "Pro plan"])})
            try:
                reference = match_feature_flag_properties(
                    flag, distinct_id, properties, bucketing_value=distinct_id
                )
            except (InconclusiveMatchError, RequiresServerEvaluation):
                continue
            compared += 1
            ours = evaluate_flag(flag, EvaluationContext(distinct_id, properties)).value
            assert ours == reference, (flag, distinct_id)
    assert compared > 5000

"""Differential check: a compiled flag answers exactly what the general evaluator answers, for random
definitions (well-formed, odd and malformed) and random users."""

import math
import random
from hashlib import sha1

from flags.bucketing import HASH_SCALE, rollout_hash
from flags.compiled import compile_flag, evaluate_compiled_flags, rollout_threshold
from flags.evaluation import EvaluationContext, evaluate_flag, evaluate_flags, person_properties_for

PROPERTY_KEYS = ["plan", "country", "age", "absent"]
OPERATORS = [
    "exact",
    "is_not",
    "icontains",
    "gt",
    "lt",
    "is_set",
    "is_not_set",
    "regex",
    "semver_gt",
    "bogus",
]
VALUES = ["pro", ["pro", "team"], "US", 30, 17.5, "^p", "1.2.0", None, True, ""]
ROLLOUTS = [None, 0, 10, 33.3, 50, 99.9, 100, 150, -100, -1, "50", True, math.nan, math.inf]
OVERRIDES = [None, "control", "test", "unknown", "", 7]


def random_filter(rng: random.Random) -> object:
    roll = rng.random()
    if roll < 0.03:
        return "not a filter"
    if roll < 0.06:
        return {"key": "1", "type": "cohort", "value": 1}
    if roll < 0.08:
        return {"key": "other", "type": "flag", "operator": "flag_evaluates_to", "value": True}
    return {
        "key": rng.choice(PROPERTY_KEYS),
        "type": "person",
        "operator": rng.choice(OPERATORS),
        "value": rng.choice(VALUES),
    }


def random_condition(rng: random.Random) -> object:
    if rng.random() < 0.05:
        return rng.choice([None, "junk", 3])
    condition = {"properties": [random_filter(rng) for _ in range(rng.randint(0, 3))]}
    if rng.random() < 0.8:
        condition["rollout_percentage"] = rng.choice(ROLLOUTS)
    if rng.random() < 0.3:
        condition["variant"] = rng.choice(OVERRIDES)
    if rng.random() < 0.04:
        condition["aggregation_group_type_index"] = 0
    return condition


def random_definition(rng: random.Random, index: int) -> dict:
    filters: dict = {"groups": [random_condition(rng) for _ in range(rng.randint(0, 4))]}
    if rng.random() < 0.6:
        shares = rng.choice([[50, 50], [34, 33, 33], [10, 20], [100], [0, 100], [33.3, 33.3, 33.4]])
        variants = [
            {"key": ["control", "test", "third"][i], "rollout_percentage": share}
            for i, share in enumerate(shares)
        ]
        if rng.random() < 0.1:
            variants.append("junk")
        filters["multivariate"] = {"variants": variants}
    if rng.random() < 0.4:
        filters["payloads"] = {"true": '"yes"', "control": "1", "test": '{"a": 1}', "holdout-7": '"held"'}
    if rng.random() < 0.3:
        filters["holdout"] = {"id": 7, "exclusion_percentage": rng.choice([0, 10, 50, 100, "x", None])}
    if rng.random() < 0.2:
        filters["early_exit"] = True
    if rng.random() < 0.05:
        filters["aggregation_group_type_index"] = 0
    if rng.random() < 0.05:
        filters["feature_enrollment"] = True
    if rng.random() < 0.05:
        filters["bucketing_identifier"] = "device_id"
    if rng.random() < 0.03:
        filters = "not filters"
    return {
        "key": f"flag-{index}",
        "active": rng.choice([True, True, True, False, 1, 0, None]),
        "filters": filters,
    }


def random_context(rng: random.Random) -> EvaluationContext:
    distinct_id = f"user-{rng.randint(0, 10_000)}"
    properties = {key: rng.choice(VALUES) for key in PROPERTY_KEYS[:3] if rng.random() < 0.7}
    return EvaluationContext(
        distinct_id,
        person_properties_for(distinct_id, properties),
        groups={"company": "acme"},
        group_type_mapping={"0": "company"},
        device_id=rng.choice([None, "device-1"]),
    )


def test_compiled_flags_answer_what_the_general_evaluator_answers():
    rng = random.Random(20261203)
    definitions = [random_definition(rng, index) for index in range(400)]
    compiled = [compile_flag(definition) for definition in definitions]
    assert sum(flag.compiled for flag in compiled) > len(compiled) // 2  # the fast path is exercised
    assert any(not flag.compiled for flag in compiled)

    for _ in range(60):
        seed = rng.random()
        expected = evaluate_flags(definitions, random_context(random.Random(seed)))
        actual = evaluate_compiled_flags(compiled, random_context(random.Random(seed)))
        assert actual == expected


def test_a_compiled_flag_reuses_a_result_already_evaluated_for_the_user():
    definition = {
        "key": "f",
        "active": True,
        "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]},
    }
    context = EvaluationContext("u", person_properties_for("u", {}))
    first = evaluate_flag(definition, context)
    assert compile_flag(definition).evaluate(context) is first


def is_out_of_rollout(key: str, identifier: str, rollout: float) -> bool:
    threshold = rollout_threshold(rollout)
    return threshold is not None and sha1(f"{key}.{identifier}".encode()).digest() >= threshold


def test_the_compiled_rollout_test_is_the_general_rollout_hash_comparison():
    rng = random.Random(7)
    for _ in range(2000):
        key = "".join(rng.choice("abcdé-_9") for _ in range(rng.randint(1, 12)))
        identifier = "".join(rng.choice("xyz0123ü.-") for _ in range(rng.randint(0, 20)))
        hashed = rollout_hash(key, identifier)
        # Rollouts at the user's own hash and either side of it: the edges the comparison must keep.
        for rollout in (rng.random(), hashed, math.nextafter(hashed, 0), math.nextafter(hashed, 1)):
            assert is_out_of_rollout(key, identifier, rollout) == (hashed > rollout)


def test_the_rollout_threshold_sits_where_the_hash_first_exceeds_the_rollout():
    for rollout in (0.0, 1e-18, 0.1, 1 / 3, 0.5, 0.999999, math.nextafter(1.0, 0)):
        first_out = int.from_bytes(rollout_threshold(rollout)[:8], "big") >> 4
        assert first_out / HASH_SCALE > rollout
        assert first_out == 0 or (first_out - 1) / HASH_SCALE <= rollout
    assert rollout_threshold(1.0) is None

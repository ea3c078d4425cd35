"""Differential check: a compiled flag answers exactly what the general evaluator answers, for random
definitions (well-formed, odd and malformed) and random users."""

import math
import random
from hashlib import sha1

import pytest

from flags import flag_set as flag_set_module
from flags.bucketing import HASH_SCALE, rollout_hash
from flags.compiled import compile_flag, evaluate_compiled_flags, rollout_threshold
from flags.evaluation import EvaluationContext, evaluate_flag, evaluate_flags, person_properties_for
from flags.flag_set import CompiledFlagSet
from flags.operators import PROPERTY_OPERATORS

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


# --- all flags at once (`CompiledFlagSet`) ----------------------------------------------------------

# One filter per operator, on properties the users below may have, with values some of them match.
OPERATOR_FILTERS = [
    ("exact", "plan", ["pro", "team"]),
    ("is_not", "country", "US"),
    ("is_set", "plan", None),
    ("is_not_set", "absent", None),
    ("regex", "plan", "^p"),
    ("not_regex", "plan", "^t"),
    ("icontains", "plan", "RO"),
    ("not_icontains", "country", "u"),
    ("starts_with", "plan", "pr"),
    ("not_starts_with", "plan", "t"),
    ("ends_with", "country", "S"),
    ("not_ends_with", "plan", "m"),
    ("gt", "age", 18),
    ("gte", "age", 30),
    ("lt", "age", 20),
    ("lte", "age", 17.5),
    ("is_date_before", "signed_up", "-30d"),
    ("is_date_after", "signed_up", "2021-01-01"),
    ("semver_eq", "version", "1.2.0"),
    ("semver_neq", "version", "1.2.0"),
    ("semver_gt", "version", "1.2.0"),
    ("semver_gte", "version", "1.3.0"),
    ("semver_lt", "version", "2.0.0"),
    ("semver_lte", "version", "1.2.0"),
    ("semver_tilde", "version", "1.2.0"),
    ("semver_caret", "version", "1.0.0"),
    ("semver_wildcard", "version", "1.*"),
    ("bogus", "plan", "pro"),
]
SHARED_CONDITIONS = [
    [{"key": key, "type": "person", "operator": operator, "value": value}]
    for operator, key, value in OPERATOR_FILTERS
] + [
    [{"key": "plan", "operator": "exact", "value": ["pro", "team"], "type": "group"}],  # the same test
    [{"key": "age", "type": "person", "operator": "gt", "value": 18}, {"key": "plan", "operator": "is_set"}],
]
USER_VALUES = {
    "plan": ["pro", "team", "free", "PRO", True, None, ["pro"]],
    "country": ["US", "us", "FR", 7],
    "age": [30, 17.5, "18", "x", 18],
    "signed_up": ["2020-01-01", "2024-06-01T10:00:00Z", "not a date", 2020],
    "version": ["1.2.0", "1.3.0", "v2.0.0", "1.2", "01.2.0", "1.2.0-beta"],
}


def shared_shape_definition(rng: random.Random, index: int, shapes: list) -> dict:
    """A flag of one of a few condition shapes, most of them compiled, some not (cohorts, flag
    dependencies, groups) and some inactive."""
    shape = rng.choice(shapes)
    conditions = []
    for properties in shape:
        condition = {"properties": properties}
        if rng.random() < 0.9:
            condition["rollout_percentage"] = rng.choice(ROLLOUTS)
        if rng.random() < 0.3:
            condition["variant"] = rng.choice(OVERRIDES)
        conditions.append(condition)
    if rng.random() < 0.05:
        conditions.insert(rng.randint(0, len(conditions)), "junk")
    filters: dict = {"groups": conditions}
    if rng.random() < 0.5:
        shares = rng.choice([[50, 50], [34, 33, 33], [10, 20], [100], [0, 100]])
        filters["multivariate"] = {
            "variants": [
                {"key": ["control", "test", "third"][i], "rollout_percentage": share}
                for i, share in enumerate(shares)
            ]
        }
    if rng.random() < 0.4:
        filters["payloads"] = {"true": '"yes"', "control": "1", "test": '{"a": 1}', "holdout-7": '"held"'}
    if rng.random() < 0.3:
        filters["holdout"] = {
            "id": rng.choice([7, 8]),
            "exclusion_percentage": rng.choice([0, 10, 50, 100, "x", None]),
        }
    if rng.random() < 0.2:
        filters["early_exit"] = True
    roll = rng.random()
    if roll < 0.04:
        filters["groups"].append({"properties": [{"key": "1", "type": "cohort", "value": 1}]})
    elif roll < 0.08:
        dependency = f"flag-{rng.randrange(200)}"
        filters["groups"].append(
            {
                "properties": [
                    {"key": dependency, "type": "flag", "operator": "flag_evaluates_to", "value": True}
                ]
            }
        )
    elif roll < 0.1:
        filters["aggregation_group_type_index"] = 0
    return {"key": f"flag-{index}", "active": rng.choice([True, True, True, True, False]), "filters": filters}


def shared_shape_flags(seed: int, count: int = 300) -> tuple[list[dict], list]:
    rng = random.Random(seed)
    # Every condition in some shape, up to three per shape; and shapes without property tests.
    conditions = rng.sample(SHARED_CONDITIONS, len(SHARED_CONDITIONS))
    shapes: list[list] = [[], [[]], [[], []]]
    while conditions:
        taken = rng.randint(1, 3)
        shapes.append(conditions[:taken])
        conditions = conditions[taken:]
    definitions = [shared_shape_definition(rng, index, shapes) for index in range(count)]
    rng.shuffle(definitions)  # groups interleave in key order
    definitions.sort(key=lambda definition: definition["key"])
    return definitions, [compile_flag(definition) for definition in definitions]


def shared_shape_context(rng: random.Random, definitions: list[dict]) -> EvaluationContext:
    distinct_id = f"user-{rng.randint(0, 10_000)}"
    properties = {key: rng.choice(values) for key, values in USER_VALUES.items() if rng.random() < 0.7}
    return EvaluationContext(
        distinct_id,
        person_properties_for(distinct_id, properties),
        groups={"company": "acme"},
        group_type_mapping={"0": "company"},
        cohorts={"1": {"type": "AND", "values": [{"key": "plan", "value": "pro", "type": "person"}]}},
        flags_by_key={definition["key"]: definition for definition in definitions},
    )


@pytest.mark.parametrize("seed", range(6))
def test_all_flags_at_once_answer_what_each_flag_alone_answers(seed):
    definitions, compiled = shared_shape_flags(seed)
    flag_set = CompiledFlagSet(compiled)
    assert any(len(group.flags) > 5 for group in flag_set.groups)  # shared tests are exercised
    assert flag_set.singles or flag_set.general or flag_set.disabled_results
    grouped_operators = {
        item["operator"]
        for group in flag_set.groups
        for flag in group.flags
        for condition in flag.definition["filters"]["groups"]
        if isinstance(condition, dict)
        for item in condition["properties"]
    }
    assert grouped_operators >= PROPERTY_OPERATORS  # every operator shared by a group of flags

    rng = random.Random(seed)
    for _ in range(80):
        context_seed = rng.random()
        expected = evaluate_flags(definitions, shared_shape_context(random.Random(context_seed), definitions))
        at_once = flag_set.evaluate(shared_shape_context(random.Random(context_seed), definitions))
        assert list(at_once) == [definition["key"] for definition in definitions]
        assert at_once == expected
        # Compiled flags answer with their shared results, which `/flags` finds encoded by identity.
        assert all(flag.holds(at_once[flag.key]) for flag in compiled if flag.compiled)
    assert sum(len(group.tables) for group in flag_set.groups) > len(flag_set.groups)  # patterns vary


def test_patterns_beyond_what_a_group_keeps_are_decided_alike(monkeypatch):
    monkeypatch.setattr(flag_set_module, "MAX_PATTERNS_PER_GROUP", 1)
    definitions, compiled = shared_shape_flags(11)
    flag_set = CompiledFlagSet(compiled)
    rng = random.Random(11)
    for _ in range(40):
        context_seed = rng.random()
        expected = evaluate_flags(definitions, shared_shape_context(random.Random(context_seed), definitions))
        assert flag_set.evaluate(shared_shape_context(random.Random(context_seed), definitions)) == expected
    assert all(len(group.tables) == 1 for group in flag_set.groups)


class CountingProperties(dict):
    """Person properties that count how often each one is read."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reads: dict[str, int] = {}

    def __getitem__(self, key):
        self.reads[key] = self.reads.get(key, 0) + 1
        return super().__getitem__(key)


def test_a_property_test_many_flags_share_runs_once_per_request():
    plan = {"key": "plan", "operator": "exact", "value": ["pro"]}
    adult = {"key": "age", "operator": "gt", "value": 18}
    definitions = [
        {
            "key": f"flag-{index}",
            "active": True,
            "filters": {
                "groups": [
                    # Two shapes sharing the `plan` test.
                    {"properties": [plan] if index % 2 else [adult, plan], "rollout_percentage": 50},
                    {"properties": [], "rollout_percentage": index},
                ]
            },
        }
        for index in range(50)
    ]
    flag_set = CompiledFlagSet([compile_flag(definition) for definition in definitions])
    assert len(flag_set.groups) == 2
    properties = CountingProperties(person_properties_for("u", {"plan": "pro", "age": 30}))
    at_once = flag_set.evaluate(EvaluationContext("u", properties))
    assert properties.reads == {"plan": 1, "age": 1}
    expected = evaluate_flags(
        definitions, EvaluationContext("u", person_properties_for("u", {"plan": "pro", "age": 30}))
    )
    assert at_once == expected

"""The evaluation engine against the protocol spec's test vectors (C.11) and operator examples (C.9)."""

import datetime as dt

import pytest

from flags.bucketing import bucket_hash, holdout_hash, rollout_hash, variant_hash, variant_lookup_table
from flags.evaluation import (
    EvaluationContext,
    FlagResult,
    ReasonCode,
    dependency_chain,
    evaluate_flag,
    evaluate_flags,
    person_properties_for,
)
from flags.operators import match_property

FIFTY_FIFTY = {
    "variants": [{"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}]
}


def flag(key: str, *, groups=None, multivariate=None, active=True, **filters) -> dict:
    body = {
        "groups": [{"properties": [], "rollout_percentage": 100}] if groups is None else groups,
        **filters,
    }
    if multivariate is not None:
        body["multivariate"] = multivariate
    return {"id": 1, "key": key, "active": active, "filters": body}


def person(distinct_id: str, **properties) -> EvaluationContext:
    return EvaluationContext(
        distinct_id=distinct_id, person_properties=person_properties_for(distinct_id, properties)
    )


def value(definition: dict, context: EvaluationContext):
    return evaluate_flag(definition, context).value


@pytest.mark.parametrize(
    ("sha1_input", "expected"),
    [
        ("test-flag.user_1", 0.43945753350675826),
        ("test-flag.user_1variant", 0.1739018708573723),
        ("test-flag.user_2", 0.793259270354777),
        ("test-flag.user_2variant", 0.11932624842283197),
        ("test-flag.user_3", 0.37528456591043424),
        ("exp-flag.user_1variant", 0.6442836333346413),
        ("exp-flag.user_3variant", 0.49761827325475644),
        ("simple-flag.distinct_id", 0.3457103347480679),
        ("beta-feature.example_id", 0.2093039334578348),
        ("holdout-some_distinct_id", 0.7270002403585725),
        ("holdout-test-identifier", 0.4493881716040236),
        ("holdout-example_id", 0.9402003475831224),
        ("holdout-example_id2", 0.6292740389966519),
        ("holdout-user_1", 0.3590969650743102),
        ("test-flag.", 0.5373905065599655),
    ],
)
def test_raw_hashes(sha1_input, expected):
    assert bucket_hash(sha1_input, "") == expected


def test_hash_helpers_build_the_three_inputs():
    assert rollout_hash("test-flag", "user_1") == 0.43945753350675826
    assert variant_hash("test-flag", "user_1") == 0.1739018708573723
    assert holdout_hash("some_distinct_id") == 0.7270002403585725
    # The holdout input joins with a hyphen, not the dot the flag hashes use.
    assert holdout_hash("user_1") != bucket_hash("holdout.", "user_1")


def test_three_way_lookup_table():
    definition = flag(
        "three-way",
        multivariate={
            "variants": [
                {"key": "a", "rollout_percentage": 33},
                {"key": "b", "rollout_percentage": 33},
                {"key": "c", "rollout_percentage": 34},
            ]
        },
    )
    assert [(key, round(low, 2), round(high, 2)) for key, low, high in variant_lookup_table(definition)] == [
        ("a", 0.0, 0.33),
        ("b", 0.33, 0.66),
        ("c", 0.66, 1.0),
    ]


VIP_OVERRIDE = flag(
    "override-flag",
    multivariate=FIFTY_FIFTY,
    groups=[
        {
            "properties": [{"key": "email", "operator": "icontains", "value": "@vip.com", "type": "person"}],
            "rollout_percentage": 100,
            "variant": "control",
        },
        {"properties": [], "rollout_percentage": 100},
    ],
)
GROUP_FLAG = flag(
    "group-flag",
    multivariate=FIFTY_FIFTY,
    groups=[{"properties": [], "rollout_percentage": 50}],
    aggregation_group_type_index=0,
)


def company(key: str | None) -> EvaluationContext:
    return EvaluationContext(
        distinct_id="user_1",
        person_properties=person_properties_for("user_1", {}),
        groups={} if key is None else {"company": key},
        group_type_mapping={"0": "company"},
    )


@pytest.mark.parametrize(
    ("vector", "definition", "context", "expected"),
    [
        ("V1", flag("test-flag", multivariate=FIFTY_FIFTY), person("user_1"), "control"),
        *[
            ("V2", flag("exp-flag", multivariate=FIFTY_FIFTY), person(did), expected)
            for did, expected in [
                ("user_1", "test"),
                ("user_2", "test"),
                ("user_3", "control"),
                ("user_6", "control"),
            ]
        ],
        *[
            ("V3", flag("exp-flag", multivariate=FIFTY_FIFTY), person(did), "test")
            for did in ["user_4", "user_5", "user_7", "user_8", "user_9", "user_10"]
        ],
        *[
            (
                "V4",
                flag("test-flag", groups=[{"properties": [], "rollout_percentage": 50}]),
                person(did),
                expected,
            )
            for did, expected in [
                ("user_1", True),
                ("user_2", False),
                ("user_3", True),
                ("user_4", True),
                ("user_5", True),
            ]
        ],
        *[
            (
                "V5",
                flag(
                    "three-way",
                    multivariate={
                        "variants": [
                            {"key": "a", "rollout_percentage": 33},
                            {"key": "b", "rollout_percentage": 33},
                            {"key": "c", "rollout_percentage": 34},
                        ]
                    },
                ),
                person(did),
                expected,
            )
            for did, expected in [("user_1", "a"), ("user_2", "c"), ("user_4", "b")]
        ],
        *[
            (
                "V6",
                flag("held-flag", multivariate=FIFTY_FIFTY, holdout={"id": 7, "exclusion_percentage": 40}),
                person(f"user_{n}"),
                expected,
            )
            for n, expected in enumerate(
                ["holdout-7", "test", "test", "holdout-7", "holdout-7", "holdout-7"], start=1
            )
        ],
        (
            "V7",
            flag(
                "held-100",
                groups=[{"properties": [], "rollout_percentage": 0}],
                holdout={"id": 9, "exclusion_percentage": 100},
            ),
            person("user_1"),
            "holdout-9",
        ),
        ("V8 vip", VIP_OVERRIDE, person("user_1", email="a@vip.com"), "control"),
        ("V8 other", VIP_OVERRIDE, person("user_1", email="a@x.com"), "test"),
        ("V8 no email", VIP_OVERRIDE, person("user_1"), "test"),
        (
            "V9",
            flag(
                "bad-override",
                multivariate=FIFTY_FIFTY,
                groups=[{"properties": [], "rollout_percentage": 100, "variant": "nonexistent"}],
            ),
            person("user_1"),
            "test",
        ),
        *[
            (
                "V10",
                flag(
                    "uneven",
                    multivariate={
                        "variants": [
                            {"key": "control", "rollout_percentage": 10},
                            {"key": "test", "rollout_percentage": 10},
                        ]
                    },
                ),
                person(did),
                True,
            )
            for did in ["user_1", "user_3"]
        ],
        ("V11 acme", GROUP_FLAG, company("acme"), "test"),
        ("V11 globex", GROUP_FLAG, company("globex"), "test"),
        ("V11 initech", GROUP_FLAG, company("initech"), False),
        ("V12", GROUP_FLAG, company(None), False),
        ("V13", flag("null-rollout", groups=[{"properties": []}]), person("user_2"), True),
        ("V14", flag("inactive-flag", multivariate=FIFTY_FIFTY, active=False), person("user_1"), False),
        *[
            (
                "V15",
                flag(
                    "plan-flag",
                    groups=[
                        {
                            "properties": [
                                {
                                    "key": "plan",
                                    "operator": "exact",
                                    "value": ["pro", "enterprise"],
                                    "type": "person",
                                }
                            ],
                            "rollout_percentage": 100,
                        }
                    ],
                ),
                person("user_1", **plan),
                expected,
            )
            for plan, expected in [({"plan": "PRO"}, True), ({"plan": "free"}, False), ({}, False)]
        ],
        *[
            (
                "V16",
                flag(
                    "shipped",
                    multivariate={
                        "variants": [
                            {"key": "control", "rollout_percentage": 0},
                            {"key": "test", "rollout_percentage": 100},
                        ]
                    },
                    holdout={"id": 5, "exclusion_percentage": 15},
                ),
                person(did),
                expected,
            )
            for did, expected in [("user_1", "test"), ("user_5", "holdout-5")]
        ],
        ("V17", flag("no-groups", groups=[]), person("user_1"), False),
    ],
)
def test_whole_flag_vectors(vector, definition, context, expected):
    assert value(definition, context) == expected, vector


def test_shipped_flag_gives_everyone_outside_the_holdout_the_shipped_variant():
    definition = flag(
        "shipped",
        multivariate={
            "variants": [
                {"key": "control", "rollout_percentage": 0},
                {"key": "test", "rollout_percentage": 100},
            ]
        },
        holdout={"id": 5, "exclusion_percentage": 15},
    )
    values = {value(definition, person(f"user_{n}")) for n in range(300)}
    assert values == {"test", "holdout-5"}


def test_holdout_percentage_is_clamped_and_missing_parts_mean_no_holdout():
    over = flag("f", multivariate=FIFTY_FIFTY, holdout={"id": 3, "exclusion_percentage": 250})
    assert value(over, person("anyone")) == "holdout-3"
    under = flag("exp-flag", multivariate=FIFTY_FIFTY, holdout={"id": 3, "exclusion_percentage": -5})
    assert value(under, person("user_1")) == "test"
    assert value(flag("f", holdout={"id": None, "exclusion_percentage": 100}), person("user_1")) is True
    assert value(flag("f", holdout={"id": 3}), person("user_1")) is True


PAYLOADS = {"control": '{"color": "grey"}', "test": '{"color": "blue"}', "holdout-7": '{"held": true}'}


def test_payload_of_the_matched_variant():
    result = evaluate_flag(flag("exp-flag", multivariate=FIFTY_FIFTY, payloads=PAYLOADS), person("user_1"))
    assert (result.variant, result.payload) == ("test", '{"color": "blue"}')
    result = evaluate_flag(flag("exp-flag", multivariate=FIFTY_FIFTY, payloads=PAYLOADS), person("user_3"))
    assert (result.variant, result.payload) == ("control", '{"color": "grey"}')


def test_boolean_payload_only_on_a_match():
    definition = flag(
        "test-flag",
        groups=[{"properties": [], "rollout_percentage": 50}],
        payloads={"true": '{"x": 1}', "false": '{"off": 1}'},
    )
    assert evaluate_flag(definition, person("user_1")).payload == '{"x": 1}'
    assert evaluate_flag(definition, person("user_2")).payload is None


def test_holdout_payload_is_looked_up_under_the_holdout_variant():
    definition = flag(
        "held-flag",
        multivariate=FIFTY_FIFTY,
        payloads=PAYLOADS,
        holdout={"id": 7, "exclusion_percentage": 40},
    )
    assert evaluate_flag(definition, person("user_1")).payload == '{"held": true}'


@pytest.mark.parametrize(
    ("definition", "context", "reason", "index", "description"),
    [
        (
            flag("exp-flag", multivariate=FIFTY_FIFTY),
            person("user_1"),
            ReasonCode.CONDITION_MATCH,
            0,
            "Matched condition set 1",
        ),
        (VIP_OVERRIDE, person("user_1"), ReasonCode.CONDITION_MATCH, 1, "Matched condition set 2"),
        (
            flag("test-flag", groups=[{"properties": [], "rollout_percentage": 50}]),
            person("user_2"),
            ReasonCode.OUT_OF_ROLLOUT_BOUND,
            0,
            "Out of rollout bound",
        ),
        (
            flag("plan", groups=[{"properties": [{"key": "plan", "value": "pro"}]}]),
            person("user_1"),
            ReasonCode.NO_CONDITION_MATCH,
            0,
            "No matching condition set",
        ),
        (
            flag("no-groups", groups=[]),
            person("user_1"),
            ReasonCode.NO_CONDITION_MATCH,
            None,
            "No matching condition set",
        ),
        (GROUP_FLAG, company(None), ReasonCode.NO_GROUP_TYPE, None, "No group type"),
        (
            flag("held-100", holdout={"id": 9, "exclusion_percentage": 100}),
            person("user_1"),
            ReasonCode.HOLDOUT_CONDITION_VALUE,
            None,
            "Holdout condition value",
        ),
        (
            flag("off", active=False),
            person("user_1"),
            ReasonCode.FLAG_DISABLED,
            None,
            "Feature flag is disabled",
        ),
    ],
)
def test_reasons(definition, context, reason, index, description):
    result = evaluate_flag(definition, context)
    assert (result.reason, result.condition_index, result.reason_description) == (reason, index, description)


def test_the_highest_priority_failure_is_reported_with_its_condition():
    definition = flag(
        "test-flag",
        groups=[
            {"properties": [{"key": "plan", "value": "pro"}], "rollout_percentage": 100},
            {"properties": [], "rollout_percentage": 50},
            {"properties": [{"key": "plan", "value": "team"}], "rollout_percentage": 100},
        ],
    )
    result = evaluate_flag(definition, person("user_2"))
    assert (result.enabled, result.reason, result.condition_index) == (
        False,
        ReasonCode.OUT_OF_ROLLOUT_BOUND,
        1,
    )


def test_conditions_are_tried_in_stored_order():
    definition = flag(
        "exp-flag",
        multivariate=FIFTY_FIFTY,
        groups=[
            {"properties": [], "rollout_percentage": 100},
            {"properties": [], "rollout_percentage": 100, "variant": "control"},
        ],
    )
    assert value(definition, person("user_1")) == "test"


def test_a_condition_can_aggregate_by_a_group():
    definition = flag(
        "group-flag", groups=[{"properties": [], "rollout_percentage": 50, "aggregation_group_type_index": 0}]
    )
    assert value(definition, company("acme")) is True
    assert value(definition, company("initech")) is False
    result = evaluate_flag(definition, company(None))
    assert (result.enabled, result.reason) == (False, ReasonCode.NO_GROUP_TYPE)


def test_group_flag_matches_group_properties_including_the_group_key():
    definition = flag(
        "group-prop",
        aggregation_group_type_index=0,
        groups=[
            {"properties": [{"key": "$group_key", "value": "acme", "type": "group", "group_type_index": 0}]}
        ],
    )
    assert value(definition, company("acme")) is True
    assert value(definition, company("globex")) is False


def test_early_exit_stops_at_an_out_of_rollout_condition():
    groups = [{"properties": [], "rollout_percentage": 50}, {"properties": [], "rollout_percentage": 100}]
    assert value(flag("test-flag", groups=groups), person("user_2")) is True
    assert value(flag("test-flag", groups=groups, early_exit=True), person("user_2")) is False


def test_device_id_bucketing():
    definition = {**flag("exp-flag", multivariate=FIFTY_FIFTY), "bucketing_identifier": "device_id"}
    context = EvaluationContext(distinct_id="someone", person_properties={}, device_id="user_3")
    assert value(definition, context) == "control"


def test_feature_enrollment_decides_when_the_property_is_sent():
    definition = flag("beta", groups=[{"properties": [], "rollout_percentage": 0}], feature_enrollment=True)
    assert evaluate_flag(definition, person("u", **{"$feature_enrollment/beta": True})).reason == (
        ReasonCode.SUPER_CONDITION_VALUE
    )
    assert value(definition, person("u", **{"$feature_enrollment/beta": "false"})) is False
    assert value(definition, person("u")) is False


def test_malformed_definitions_never_raise():
    context = person("user_1", plan="pro")
    for definition in [
        {"key": "a", "active": True, "filters": None},
        {"key": "b", "active": True, "filters": {"groups": "nope"}},
        {"key": "c", "active": True, "filters": {"groups": [None, {"properties": "x"}]}},
        {"key": "d", "active": True, "filters": {"groups": [{"rollout_percentage": "50"}]}},
        {
            "key": "e",
            "active": True,
            "filters": {"multivariate": {"variants": [{"key": "x", "rollout_percentage": "a"}]}},
        },
        {
            "key": "f",
            "active": True,
            "filters": {"groups": [{"properties": [{"operator": "gt", "value": None}]}]},
        },
        {"key": "g", "active": True, "filters": {"holdout": {"id": 1, "exclusion_percentage": "lots"}}},
        {"key": "h", "active": True, "filters": {"groups": [{"properties": [None]}]}},
    ]:
        assert isinstance(evaluate_flag(definition, context), FlagResult)


# --- property operators (spec C.9 observed examples, server semantics for missing keys) ---------


@pytest.mark.parametrize(
    ("operator", "expected_value", "properties", "matches"),
    [
        ("exact", "US", {"country": "us"}, True),
        ("exact", ["pro", "team"], {"country": "Team"}, True),
        ("exact", "5", {"country": 5}, True),
        ("exact", "true", {"country": True}, True),
        ("exact", "false", {"country": True}, False),
        ("exact", [], {"country": "true"}, True),
        ("exact", "US", {}, False),
        ("is_not", ["US", "CA"], {"country": "us"}, False),
        ("is_not", "US", {"country": "FR"}, True),
        ("is_not", "US", {"country": None}, True),
        ("icontains", "Ex", {"country": "mexico"}, True),
        ("not_icontains", "Ex", {"country": "mexico"}, False),
        ("starts_with", "ME", {"country": "mexico"}, True),
        ("not_starts_with", "ME", {"country": "mexico"}, False),
        ("ends_with", "CO", {"country": "mexico"}, True),
        ("not_ends_with", "x", {"country": "mexico"}, True),
        ("regex", "^u.a$", {"country": "usa"}, True),
        ("regex", "[invalid", {"country": "usa"}, False),
        ("not_regex", "[invalid", {"country": "usa"}, False),
        ("not_regex", "^u", {"country": "usa"}, False),
        ("gt", "10", {"country": 11}, True),
        ("gt", 10, {"country": "9.5"}, False),
        ("gte", 10, {"country": 10}, True),
        ("lt", "abc", {"country": 1}, False),
        ("lte", 3, {"country": "three"}, False),
        ("lte", 3, {"country": None}, False),
        ("is_set", None, {"country": None}, True),
        ("is_set", None, {}, False),
        ("is_not_set", None, {"country": "x"}, False),
        ("is_not_set", None, {}, True),
        ("is_date_before", "2024-01-01", {"country": "2023-12-31T23:59:59Z"}, True),
        ("is_date_after", "2024-01-01", {"country": "2023-12-31T23:59:59Z"}, False),
        ("is_date_after", "-30d", {"country": "2999-01-01"}, True),
        ("is_date_before", "-1y", {"country": "2000-01-01 00:00:00 UTC"}, True),
        ("is_date_before", "2024-01-01", {"country": 5}, False),
        ("semver_gt", "1.2.3", {"country": "1.10.0"}, True),
        ("semver_eq", "v1.2", {"country": "1.2.0-beta+42"}, True),
        ("semver_neq", "1.2.3", {"country": "1.2.4"}, True),
        ("semver_lt", "1.2.3", {"country": "01.0.0"}, False),
        ("semver_tilde", "1.2.3", {"country": "1.3.0"}, False),
        ("semver_tilde", "1.2.3", {"country": "1.2.9"}, True),
        ("semver_caret", "0.2.3", {"country": "0.2.9"}, True),
        ("semver_caret", "0.0.3", {"country": "0.0.4"}, False),
        ("semver_wildcard", "1.2.*", {"country": "1.2.7"}, True),
        ("semver_wildcard", "1.*", {"country": "2.0.0"}, False),
        ("no_such_operator", "x", {"country": "x"}, False),
        # Values no comparison can use do not match (and never raise): a year 0000, integers
        # longer than Python converts (4300 digits) in a version or a relative date.
        ("is_date_after", "2024-01-01", {"country": "0000"}, False),
        ("is_date_before", "0000", {"country": "2024-01-01"}, False),
        ("is_date_before", "-" + "9" * 5000 + "d", {"country": "2024-01-01"}, False),
        ("semver_gt", "1.2.3", {"country": "9" * 5000}, False),
        ("semver_lt", "1." + "9" * 5000, {"country": "1.2.3"}, False),
        ("semver_wildcard", "9" * 5000 + ".*", {"country": "1.2.3"}, False),
    ],
)
def test_property_operators(operator, expected_value, properties, matches):
    assert (
        match_property({"key": "country", "operator": operator, "value": expected_value}, properties)
        is matches
    )


def test_operator_defaults_to_exact():
    assert match_property({"key": "plan", "value": "PRO"}, {"plan": "pro"})


def test_relative_months_clamp_the_day():
    march_31 = dt.datetime(2025, 3, 31, 12, tzinfo=dt.UTC)
    rule = {"key": "joined", "operator": "is_date_after", "value": "-2m"}
    assert match_property(rule, {"joined": "2025-01-28T12:00:01Z"}, now=lambda: march_31)
    assert not match_property(rule, {"joined": "2025-01-28T11:59:59Z"}, now=lambda: march_31)


def test_distinct_id_is_a_person_property_unless_the_caller_sent_one():
    assert person_properties_for("u1", {"plan": "pro"}) == {"plan": "pro", "distinct_id": "u1"}
    assert person_properties_for("u1", {"distinct_id": "mine"}) == {"distinct_id": "mine"}


# --- cohorts and flag dependencies ---------------------------------------------------------------


def test_cohort_filters_evaluate_the_cohort_definition():
    cohorts = {
        "4": {
            "type": "OR",
            "values": [
                {
                    "type": "AND",
                    "values": [
                        {"key": "plan", "value": "pro", "type": "person"},
                        {"key": "country", "value": "us", "type": "person", "negation": True},
                    ],
                }
            ],
        }
    }
    definition = flag("cohort-flag", groups=[{"properties": [{"key": "id", "value": 4, "type": "cohort"}]}])
    excluded = flag(
        "not-cohort",
        groups=[{"properties": [{"key": "id", "value": 4, "type": "cohort", "operator": "not_in"}]}],
    )

    def ctx(**properties):
        return EvaluationContext("u", person_properties_for("u", properties), cohorts=cohorts)

    assert value(definition, ctx(plan="pro", country="fr")) is True
    assert value(definition, ctx(plan="pro", country="us")) is False
    assert value(excluded, ctx(plan="pro", country="us")) is True
    static = flag("static", groups=[{"properties": [{"key": "id", "value": 99, "type": "cohort"}]}])
    assert value(static, ctx(plan="pro")) is False


def dependent_flags() -> dict[str, dict]:
    base = flag("base", groups=[{"properties": [{"key": "plan", "value": "pro"}]}])
    child = flag(
        "child",
        groups=[
            {"properties": [{"key": "base", "type": "flag", "operator": "flag_evaluates_to", "value": True}]}
        ],
    )
    loop_a = flag(
        "loop-a",
        groups=[
            {
                "properties": [
                    {"key": "loop-b", "type": "flag", "operator": "flag_evaluates_to", "value": True}
                ]
            }
        ],
    )
    loop_b = flag(
        "loop-b",
        groups=[
            {
                "properties": [
                    {"key": "loop-a", "type": "flag", "operator": "flag_evaluates_to", "value": True}
                ]
            }
        ],
    )
    orphan = flag(
        "orphan",
        groups=[
            {"properties": [{"key": "gone", "type": "flag", "operator": "flag_evaluates_to", "value": True}]}
        ],
    )
    return {f["key"]: f for f in [base, child, loop_a, loop_b, orphan]}


def test_flag_dependencies_and_their_chains():
    flags = dependent_flags()

    def evaluate(**properties):
        context = EvaluationContext("u", person_properties_for("u", properties), flags_by_key=flags)
        return evaluate_flags(flags.values(), context)

    results = evaluate(plan="pro")
    assert results["child"].value is True
    assert evaluate(plan="free")["child"].value is False
    assert (results["loop-a"].enabled, results["loop-a"].reason) == (False, ReasonCode.MISSING_DEPENDENCY)
    assert results["orphan"].reason == ReasonCode.MISSING_DEPENDENCY

    assert dependency_chain("child", flags) == ["base", "child"]
    assert dependency_chain("loop-a", flags) == []
    assert dependency_chain("gone", flags) == ["gone"]


def test_deeply_nested_cohorts_do_not_exhaust_the_stack():
    group = {"type": "AND", "values": [{"key": "plan", "value": "pro"}]}
    for _ in range(5000):
        group = {"type": "AND", "values": [group]}
    definition = flag("deep", groups=[{"properties": [{"key": "id", "value": 1, "type": "cohort"}]}])
    context = EvaluationContext("u", person_properties_for("u", {"plan": "pro"}), cohorts={"1": group})
    assert value(definition, context) is False

"""The one flag-filter validation path: every message through the API, and its normalization."""

from copy import deepcopy

import pytest
from rest_framework.exceptions import ValidationError

from flags import validation as v
from flags.models import FeatureFlag
from tests.experiments.helpers import validation_error
from tests.factories import CohortFactory, ExperimentHoldoutFactory, FeatureFlagFactory

pytestmark = pytest.mark.django_db


def group(*properties: dict, rollout=100, **extra) -> dict:
    return {"properties": list(properties), "rollout_percentage": rollout, **extra}


def person(key: str = "email", value="a@b.c", **extra) -> dict:
    return {"key": key, "value": value, "type": "person", **extra}


def mv(*pairs: tuple[str, int]) -> dict:
    return {"variants": [{"key": key, "rollout_percentage": share} for key, share in pairs]}


CONTROL_TEST = mv(("control", 50), ("test", 50))

INVALID_FILTERS = [
    pytest.param({"groups": []}, v.GROUPS_REQUIRED, "invalid_input", id="no-groups"),
    pytest.param({}, v.GROUPS_REQUIRED, "invalid_input", id="empty"),
    pytest.param({"groups": "all"}, v.GROUPS_NOT_A_LIST, "invalid_input", id="groups-not-list"),
    pytest.param({"groups": ["x"]}, v.GROUP_NOT_AN_OBJECT, "invalid_input", id="group-not-object"),
    pytest.param(
        {"groups": [{"properties": {}}]}, v.GROUP_PROPERTIES_NOT_A_LIST, "invalid_input", id="props-dict"
    ),
    pytest.param(
        {"groups": [group(rollout=150)]}, v.GROUP_ROLLOUT_INVALID, "invalid_input", id="rollout-150"
    ),
    pytest.param(
        {"groups": [group(rollout=-1)]}, v.GROUP_ROLLOUT_INVALID, "invalid_input", id="rollout-negative"
    ),
    pytest.param(
        {"groups": [group(rollout="50")]}, v.GROUP_ROLLOUT_INVALID, "invalid_input", id="rollout-string"
    ),
    pytest.param(
        {"groups": [group(rollout=True)]}, v.GROUP_ROLLOUT_INVALID, "invalid_input", id="rollout-bool"
    ),
    pytest.param(
        {"groups": [group(variant="nope")], "multivariate": CONTROL_TEST},
        v.GROUP_VARIANT_UNKNOWN,
        "invalid_input",
        id="override-unknown",
    ),
    pytest.param({"groups": [group("x")]}, v.PROPERTY_NOT_AN_OBJECT, "invalid_input", id="property-string"),
    pytest.param(
        {"groups": [group({"value": 1})]}, v.PROPERTY_NOT_AN_OBJECT, "invalid_input", id="property-no-key"
    ),
    pytest.param(
        {"groups": [group({"key": "$browser", "value": "x", "type": "event"})]},
        v.PERSON_PROPERTIES_ONLY,
        "invalid_input",
        id="event-property",
    ),
    pytest.param(
        {"groups": [group(person())], "aggregation_group_type_index": 0},
        v.GROUP_PROPERTIES_ONLY,
        "invalid_input",
        id="person-property-on-group-flag",
    ),
    pytest.param(
        {
            "groups": [group({"key": "name", "value": "x", "type": "group", "group_type_index": 1})],
            "aggregation_group_type_index": 0,
        },
        v.GROUP_PROPERTIES_ONLY,
        "invalid_input",
        id="other-group-type",
    ),
    pytest.param(
        {"groups": [group({"key": "1", "value": "true", "type": "flag", "operator": "exact"})]},
        v.FLAG_PROPERTY_OPERATOR,
        "invalid_input",
        id="flag-property-operator",
    ),
    pytest.param(
        {"groups": [group(person(value=list(range(1001))))]},
        "Property group expressions of type email cannot contain more than 1000 values.",
        "invalid_input",
        id="too-many-values",
    ),
    pytest.param(
        {"groups": [group(person(value=["a"], operator="regex"))]},
        "Invalid value for operator regex: ['a']",
        "invalid_value",
        id="regex-list",
    ),
    pytest.param(
        {"groups": [group(person(value=3, operator="gt"))]},
        "Invalid value for operator gt: 3",
        "invalid_value",
        id="gt-number",
    ),
    pytest.param(
        {"groups": [group(person(operator="in"))]},
        "The 'in' operator is only valid for cohort properties, not 'person' properties.",
        "invalid_operator",
        id="in-on-person",
    ),
    pytest.param(
        {"groups": [group({"key": "id", "value": 999999, "type": "cohort"})]},
        "Cohort with id 999999 does not exist",
        "cohort_does_not_exist",
        id="unknown-cohort",
    ),
    pytest.param(
        {"groups": [group({"key": "id", "value": "9" * 5000, "type": "cohort"})]},
        f"Cohort with id {'9' * 5000} does not exist",
        "cohort_does_not_exist",
        id="cohort-id-longer-than-int-reads",
    ),
    pytest.param(
        {"groups": [group({"key": "id", "value": "²", "type": "cohort"})]},
        "Cohort with id ² does not exist",
        "cohort_does_not_exist",
        id="cohort-id-superscript-digit",
    ),
    pytest.param(
        {"groups": [group()], "multivariate": [1]},
        v.MULTIVARIATE_NOT_AN_OBJECT,
        "invalid_input",
        id="mv-list",
    ),
    pytest.param(
        {"groups": [group()], "multivariate": {"variants": "x"}},
        v.MULTIVARIATE_NOT_AN_OBJECT,
        "invalid_input",
        id="variants-str",
    ),
    pytest.param(
        {"groups": [group()], "multivariate": {"variants": ["control"]}},
        v.VARIANT_NOT_AN_OBJECT,
        "invalid_input",
        id="variant-str",
    ),
    pytest.param(
        {"groups": [group()], "multivariate": {"variants": [{"rollout_percentage": 100}]}},
        v.VARIANT_NOT_AN_OBJECT,
        "invalid_input",
        id="variant-no-key",
    ),
    pytest.param(
        {"groups": [group()], "multivariate": mv(("", 100))},
        v.VARIANT_KEY_INVALID,
        "invalid_input",
        id="blank-key",
    ),
    pytest.param(
        {"groups": [group()], "multivariate": mv((5, 100))},
        v.VARIANT_KEY_INVALID,
        "invalid_input",
        id="int-key",
    ),
    pytest.param(
        {"groups": [group()], "multivariate": mv(("a", 50), ("a", 50))},
        v.VARIANT_KEYS_NOT_UNIQUE,
        "invalid_input",
        id="dupes",
    ),
    pytest.param(
        {"groups": [group()], "multivariate": mv(("a", 50.5), ("b", 49.5))},
        v.VARIANT_ROLLOUT_INVALID,
        "invalid_input",
        id="float",
    ),
    pytest.param(
        {"groups": [group()], "multivariate": mv(("a", 101))},
        v.VARIANT_ROLLOUT_INVALID,
        "invalid_input",
        id="101",
    ),
    pytest.param(
        {"groups": [group()], "multivariate": mv(("a", 40), ("b", 40))},
        v.VARIANTS_MUST_SUM_TO_100,
        "invalid_input",
        id="sum",
    ),
    pytest.param(
        {"groups": [group()], "payloads": ["x"]}, v.PAYLOADS_NOT_A_DICT, "invalid_input", id="payloads-list"
    ),
    pytest.param(
        {"groups": [group()], "payloads": {"true": "{nope"}},
        v.PAYLOAD_NOT_JSON,
        "invalid_input",
        id="payload-json",
    ),
    pytest.param(
        {"groups": [group()], "payloads": {"true": "[" * 5000}},
        v.PAYLOAD_NOT_JSON,
        "invalid_input",
        id="payload-json-too-deep-to-read",
    ),
    pytest.param(
        {"groups": [group()], "multivariate": CONTROL_TEST, "payloads": {"other": "1"}},
        v.PAYLOAD_KEYS_MULTIVARIATE,
        "invalid_input",
        id="payload-unknown-variant",
    ),
    pytest.param(
        {"groups": [group()], "payloads": {"control": "1"}},
        v.PAYLOAD_KEYS_BOOLEAN,
        "invalid_input",
        id="payload-bool",
    ),
    pytest.param(
        {"groups": [group()], "aggregation_group_type_index": 5},
        v.AGGREGATION_INDEX_INVALID,
        "invalid_input",
        id="agg-5",
    ),
    pytest.param(
        {"groups": [group()], "aggregation_group_type_index": "1"},
        v.AGGREGATION_INDEX_INVALID,
        "invalid_input",
        id="agg-str",
    ),
    pytest.param({"groups": [group()], "holdout": "x"}, v.HOLDOUT_INVALID, "invalid_input", id="holdout-str"),
    pytest.param(
        {"groups": [group()], "holdout": {"id": "1"}}, v.HOLDOUT_INVALID, "invalid_input", id="holdout-id-str"
    ),
    pytest.param(
        {"groups": [group()], "holdout": {"id": 999999, "exclusion_percentage": 10}},
        v.HOLDOUT_DOES_NOT_EXIST,
        "invalid_input",
        id="holdout-unknown",
    ),
]


@pytest.mark.parametrize(("filters", "detail", "code"), INVALID_FILTERS)
def test_invalid_filters_on_create(api, filters, detail, code):
    response = api.post(api.url("feature_flags/"), {"key": "flag", "filters": filters}, format="json")
    assert response.status_code == 400
    assert response.json() == validation_error(detail, "filters", code)
    assert not FeatureFlag.objects.exists()


@pytest.mark.parametrize(
    ("filters", "detail", "code"), [case for case in INVALID_FILTERS if case.id not in ("empty", "no-groups")]
)
def test_invalid_filters_on_update(api, filters, detail, code):
    flag = FeatureFlagFactory(project=api.project)
    before = deepcopy(flag.filters)
    response = api.patch(api.url(f"feature_flags/{flag.id}/"), {"filters": filters}, format="json")
    assert response.status_code == 400
    assert response.json() == validation_error(detail, "filters", code)
    flag.refresh_from_db()
    assert (flag.filters, flag.version) == (before, 1)


def test_other_projects_cohort_and_holdout_are_unknown(api, other_project):
    cohort = CohortFactory(project=other_project)
    response = api.post(
        api.url("feature_flags/"),
        {"key": "flag", "filters": {"groups": [group({"key": "id", "value": cohort.id, "type": "cohort"})]}},
        format="json",
    )
    assert response.json() == validation_error(
        f"Cohort with id {cohort.id} does not exist", "filters", "cohort_does_not_exist"
    )
    holdout = ExperimentHoldoutFactory(project=other_project)
    response = api.post(
        api.url("feature_flags/"),
        {
            "key": "flag",
            "filters": {"groups": [group()], "holdout": {"id": holdout.id, "exclusion_percentage": 5}},
        },
        format="json",
    )
    assert response.json() == validation_error(v.HOLDOUT_DOES_NOT_EXIST, "filters")


def test_valid_filters_are_accepted(api):
    cohort = CohortFactory(project=api.project)
    holdout = ExperimentHoldoutFactory(project=api.project)
    filters = {
        "groups": [
            group(
                person(operator="icontains"),
                {"key": "id", "value": cohort.id, "type": "cohort", "operator": "in"},
            ),
            group(rollout=None, variant="test"),
        ],
        "multivariate": CONTROL_TEST,
        "payloads": {"control": {"a": 1}, "test": '"b"'},
        "holdout": {"id": holdout.id, "exclusion_percentage": 10},
        "super_groups": [{"properties": [], "rollout_percentage": 1}],
    }
    response = api.post(api.url("feature_flags/"), {"key": "rich", "filters": filters}, format="json")
    assert response.status_code == 201, response.json()
    stored = FeatureFlag.objects.get(key="rich").filters
    assert stored["payloads"] == {"control": '{"a": 1}', "test": '"b"'}
    assert stored["super_groups"] == filters["super_groups"]
    assert stored["groups"] == filters["groups"]


def test_group_flag_with_group_properties(api):
    filters = {
        "groups": [group({"key": "name", "value": "acme", "type": "group", "group_type_index": 2})],
        "aggregation_group_type_index": 2,
    }
    response = api.post(api.url("feature_flags/"), {"key": "groups", "filters": filters}, format="json")
    assert response.status_code == 201, response.json()


def test_validation_returns_a_normalized_copy_and_never_mutates_its_input(project):
    filters = {
        "groups": [{"rollout_percentage": 10}],
        "multivariate": CONTROL_TEST,
        "payloads": {"control": [1, 2]},
    }
    original = deepcopy(filters)
    normalized = v.validate_flag_filters(filters, project=project, is_create=True)
    assert filters == original
    assert normalized["groups"] == [{"rollout_percentage": 10, "properties": []}]
    assert normalized["payloads"] == {"control": "[1, 2]"}


def test_filters_must_be_an_object(project):
    with pytest.raises(ValidationError) as raised:
        v.validate_flag_filters(["groups"], project=project, is_create=True)
    assert raised.value.detail == [v.FILTERS_NOT_AN_OBJECT]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", v.FLAG_KEY_BLANK),
        ("   ", v.FLAG_KEY_BLANK),
        (None, v.FLAG_KEY_BLANK),
        ("k" * 401, v.FLAG_KEY_TOO_LONG),
        ("a.b", v.FLAG_KEY_INVALID),
    ],
)
def test_flag_key_rules(project, key, message):
    with pytest.raises(ValidationError) as raised:
        v.validate_flag_key(key, project=project)
    assert raised.value.detail == [message]


def test_flag_key_uniqueness_ignores_deleted_flags_and_the_flag_itself(project):
    live = FeatureFlagFactory(project=project, key="live")
    FeatureFlagFactory(project=project, key="gone", deleted=True)
    assert v.validate_flag_key("gone", project=project) == "gone"
    assert v.validate_flag_key("live", project=project, exclude_flag_id=live.id) == "live"
    with pytest.raises(ValidationError):
        v.validate_flag_key("live", project=project)


def test_experiment_writes_use_the_same_validation(api):
    """An experiment's flag goes through the same path: payload keys must be variant keys."""
    response = api.post(
        api.url("experiments/"),
        {"name": "E", "feature_flag_key": "e", "parameters": {"feature_flag_payloads": {"nope": "1"}}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["detail"] == v.PAYLOAD_KEYS_MULTIVARIATE
    assert not FeatureFlag.objects.exists()

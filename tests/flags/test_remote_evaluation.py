"""`POST /flags/` and `/decide/`: PostHog's remote evaluation over HTTP."""

import gzip
import json
import uuid

import pytest
from django.test import Client

from events.models import GroupTypeMapping
from tests.factories import CohortFactory, FeatureFlagFactory, GroupTypeMappingFactory

pytestmark = pytest.mark.django_db

FIFTY_FIFTY = {
    "variants": [{"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}]
}
PAYLOADS = {"control": '{"color": "grey"}', "test": '{"color": "blue"}'}


@pytest.fixture
def client() -> Client:
    return Client()


@pytest.fixture
def exp_flag(project):
    return FeatureFlagFactory(
        project=project,
        key="exp-flag",
        name="Checkout experiment",
        version=3,
        filters={
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": FIFTY_FIFTY,
            "payloads": PAYLOADS,
        },
    )


def post_flags(client, body, path="/flags/?v=2", **headers):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.generic("POST", path, data, content_type="application/json", headers=headers)


def test_v2_response_for_a_variant(client, project, exp_flag):
    response = post_flags(client, {"api_key": project.api_token, "distinct_id": "user_1"})
    assert response.status_code == 200
    body = response.json()
    assert body["errorsWhileComputingFlags"] is False
    assert uuid.UUID(body["requestId"])
    assert isinstance(body["evaluatedAt"], int) and body["evaluatedAt"] > 1_700_000_000_000
    assert body["flags"] == {
        "exp-flag": {
            "key": "exp-flag",
            "enabled": True,
            "variant": "test",
            "reason": {
                "code": "condition_match",
                "condition_index": 0,
                "description": "Matched condition set 1",
            },
            "metadata": {
                "id": exp_flag.id,
                "version": 3,
                "description": "Checkout experiment",
                "payload": '{"color": "blue"}',
                "has_experiment": False,
            },
        }
    }


@pytest.mark.parametrize("token_field", ["api_key", "token", "$token"])
def test_token_may_come_in_any_of_the_three_fields(client, project, exp_flag, token_field):
    response = post_flags(client, {token_field: project.api_token, "distinct_id": "user_3"})
    assert response.json()["flags"]["exp-flag"]["variant"] == "control"


def test_paths_with_and_without_slash_and_any_version(client, project, exp_flag):
    for path in ["/flags", "/flags/", "/flags/?v=4", "/flags?v=3&config=true"]:
        response = post_flags(client, {"api_key": project.api_token, "distinct_id": "user_1"}, path=path)
        assert response.json()["flags"]["exp-flag"]["variant"] == "test", path


def test_inactive_flags_are_answered_disabled(client, project, exp_flag):
    FeatureFlagFactory(project=project, key="paused", active=False)
    FeatureFlagFactory(project=project, key="gone", deleted=True)
    flags = post_flags(client, {"api_key": project.api_token, "distinct_id": "user_1"}).json()["flags"]
    assert set(flags) == {"exp-flag", "paused"}
    assert flags["paused"]["enabled"] is False
    assert flags["paused"]["variant"] is None
    assert flags["paused"]["reason"] == {
        "code": "flag_disabled",
        "condition_index": None,
        "description": "Feature flag is disabled",
    }
    assert flags["paused"]["metadata"]["payload"] is None


@pytest.mark.parametrize("keys", [{}, {"flag_keys_to_evaluate": ["missing"]}])
def test_a_v2_answer_with_no_flags(client, project, keys):
    response = post_flags(client, {"api_key": project.api_token, "distinct_id": "user_1", **keys})
    assert response.status_code == 200
    body = response.json()
    assert body["flags"] == {}
    assert body["errorsWhileComputingFlags"] is False
    assert uuid.UUID(body["requestId"])
    assert list(body) == ["flags", "errorsWhileComputingFlags", "requestId", "evaluatedAt"]


def test_a_v2_answer_is_compact_json_in_key_order(client, project, exp_flag):
    FeatureFlagFactory(project=project, key="another", active=False)
    response = post_flags(client, {"api_key": project.api_token, "distinct_id": "user_1"})
    body = response.json()
    assert list(body["flags"]) == ["another", "exp-flag"]
    assert response.content == json.dumps(body, separators=(",", ":")).encode()


@pytest.mark.parametrize("field", ["flag_keys_to_evaluate", "flag_keys"])
def test_flag_keys_limit_the_answer(client, project, exp_flag, field):
    FeatureFlagFactory(project=project, key="other")
    body = {"api_key": project.api_token, "distinct_id": "user_1", field: ["exp-flag", "missing"]}
    assert set(post_flags(client, body).json()["flags"]) == {"exp-flag"}


def test_distinct_id_is_a_person_property(client, project):
    FeatureFlagFactory(
        project=project,
        key="me-only",
        filters={"groups": [{"properties": [{"key": "distinct_id", "value": "user_9", "type": "person"}]}]},
    )

    def flags_for(did):
        return post_flags(client, {"api_key": project.api_token, "distinct_id": did}).json()["flags"]

    assert flags_for("user_9")["me-only"]["enabled"] is True
    assert flags_for("user_8")["me-only"]["enabled"] is False


def test_person_properties_from_the_request_are_used(client, project):
    FeatureFlagFactory(
        project=project,
        key="plan-flag",
        filters={"groups": [{"properties": [{"key": "plan", "value": ["pro"], "operator": "exact"}]}]},
    )
    body = {"api_key": project.api_token, "distinct_id": "u", "person_properties": {"plan": "PRO"}}
    assert post_flags(client, body).json()["flags"]["plan-flag"]["enabled"] is True
    body["person_properties"] = {"plan": "free"}
    record = post_flags(client, body).json()["flags"]["plan-flag"]
    assert (record["enabled"], record["reason"]["code"]) == (False, "no_condition_match")


def test_group_flags_use_the_group_key_and_the_projects_group_types(client, project):
    GroupTypeMappingFactory(project=project, group_type="company", group_type_index=0)
    FeatureFlagFactory(
        project=project,
        key="group-flag",
        filters={
            "groups": [{"properties": [], "rollout_percentage": 50}],
            "multivariate": FIFTY_FIFTY,
            "aggregation_group_type_index": 0,
        },
    )

    def record(**extra):
        body = {"api_key": project.api_token, "distinct_id": "user_1", **extra}
        return post_flags(client, body).json()["flags"]["group-flag"]

    assert record(groups={"company": "acme"})["variant"] == "test"
    assert record(groups={"company": "initech"})["enabled"] is False
    assert record(groups={"company": "initech"})["reason"]["code"] == "out_of_rollout_bound"
    assert record()["reason"]["code"] == "no_group_type"


def test_holdout_variant_and_reason(client, project):
    FeatureFlagFactory(
        project=project,
        key="held-flag",
        filters={
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": FIFTY_FIFTY,
            "holdout": {"id": 7, "exclusion_percentage": 40},
        },
    )
    record = post_flags(client, {"api_key": project.api_token, "distinct_id": "user_1"}).json()["flags"][
        "held-flag"
    ]
    assert (record["enabled"], record["variant"]) == (True, "holdout-7")
    assert record["reason"] == {
        "code": "holdout_condition_value",
        "condition_index": None,
        "description": "Holdout condition value",
    }


def test_v1_shape_when_asked(client, project, exp_flag):
    FeatureFlagFactory(project=project, key="paused", active=False)
    body = post_flags(
        client, {"api_key": project.api_token, "distinct_id": "user_1"}, path="/flags/?v=1"
    ).json()
    assert body == {
        "featureFlags": {"exp-flag": "test", "paused": False},
        "featureFlagPayloads": {"exp-flag": '{"color": "blue"}'},
        "errorsWhileComputingFlags": False,
    }


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("", {"featureFlags": ["exp-flag"], "errorsWhileComputingFlags": False}),
        ("?v=2", {"featureFlags": {"exp-flag": "test"}, "errorsWhileComputingFlags": False}),
        (
            "?v=3",
            {
                "featureFlags": {"exp-flag": "test", "paused": False},
                "featureFlagPayloads": {"exp-flag": '{"color": "blue"}'},
                "errorsWhileComputingFlags": False,
            },
        ),
    ],
)
def test_decide_shapes(client, project, exp_flag, version, expected):
    FeatureFlagFactory(project=project, key="paused", active=False)
    body = {"api_key": project.api_token, "distinct_id": "user_1"}
    assert post_flags(client, body, path=f"/decide/{version}").json() == expected


def test_decide_v4_is_the_v2_shape(client, project, exp_flag):
    body = post_flags(
        client, {"token": project.api_token, "distinct_id": "user_1"}, path="/decide/?v=4"
    ).json()
    assert body["flags"]["exp-flag"]["variant"] == "test"


def test_gzip_body(client, project, exp_flag):
    raw = gzip.compress(json.dumps({"api_key": project.api_token, "distinct_id": "user_1"}).encode())
    response = client.generic(
        "POST", "/flags/?v=2", raw, content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    assert response.json()["flags"]["exp-flag"]["variant"] == "test"


def test_nan_is_tolerated(client, project, exp_flag):
    raw = '{"api_key": "TOKEN", "distinct_id": "user_1", "person_properties": {"x": NaN}}'
    raw = raw.replace("TOKEN", project.api_token)
    assert post_flags(client, raw).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"distinct_id": "u"},
            401,
            "No API token provided. Please include a valid API token in your request.",
        ),
        (
            {"api_key": "phc_unknown", "distinct_id": "u"},
            401,
            "The provided API key is invalid or has expired. Please check your API key and try again.",
        ),
        (
            {"api_key": "TOKEN"},
            400,
            "The distinct_id field is missing from the request. Please include a valid identifier.",
        ),
        (
            {"api_key": "TOKEN", "distinct_id": ""},
            400,
            "The distinct_id field cannot be empty. Please provide a valid identifier.",
        ),
    ],
)
def test_errors_are_plain_text_as_posthogs_flags_service(client, project, body, status, message):
    body = {key: project.api_token if value == "TOKEN" else value for key, value in body.items()}
    response = post_flags(client, body)
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == message


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "[]",
        '"text"',
        "",
        '{"api_key": "TOKEN", "distinct_id": {"a": 1}}',
        '{"api_key": "TOKEN", "distinct_id": "u", "groups": []}',
        '{"api_key": "TOKEN", "distinct_id": "u", "person_properties": "x"}',
        '{"api_key": "TOKEN", "distinct_id": "u", "group_properties": {"company": 5}}',
        '{"api_key": "TOKEN", "distinct_id": "u", "flag_keys_to_evaluate": "exp-flag"}',
        '{"api_key": "TOKEN", "distinct_id": "u", "flag_keys_to_evaluate": [1]}',
    ],
)
def test_malformed_bodies_are_400(client, project, exp_flag, raw):
    response = post_flags(client, raw.replace("TOKEN", project.api_token))
    assert response.status_code == 400
    assert response.content.decode().startswith(("Failed to parse request", "The distinct_id"))


def test_bad_gzip_is_400(client, project):
    response = client.generic(
        "POST",
        "/flags/",
        b"\x1f\x8bnot really",
        content_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )
    assert response.status_code == 400


def test_methods(client):
    assert client.get("/flags/").json()["flags"] == {}
    assert client.head("/flags/").status_code == 200
    options = client.options("/flags/")
    assert options.status_code == 204
    assert options["Allow"] == "GET, POST, OPTIONS, HEAD"
    assert client.put("/flags/").status_code == 405
    assert client.delete("/flags").status_code == 405


def test_personal_api_key_auth_and_throttles_do_not_apply(client, project, exp_flag, settings):
    settings.THROTTLE_BURST_RATE = "1/minute"
    body = {"api_key": project.api_token, "distinct_id": "user_1"}
    for _ in range(3):
        response = post_flags(client, body, HTTP_AUTHORIZATION="Bearer phx_not_a_real_key")
        assert response.status_code == 200


def test_one_query_per_request_whatever_the_number_of_flags(client, project, django_assert_max_num_queries):
    GroupTypeMapping.objects.create(project=project, group_type="company", group_type_index=0)
    for index in range(30):
        FeatureFlagFactory(project=project, key=f"flag-{index:02d}")
    body = {"api_key": project.api_token, "distinct_id": "user_1"}
    post_flags(client, body)  # fills the cache
    with django_assert_max_num_queries(1):
        flags = post_flags(client, body).json()["flags"]
    assert len(flags) == 30


def test_deeply_nested_property_values_never_500(client, project):
    FeatureFlagFactory(
        project=project,
        key="plan-flag",
        filters={"groups": [{"properties": [{"key": "plan", "value": "x"}]}]},
    )
    for depth in (200, 900, 5000):
        nested = "[" * depth + "]" * depth
        raw = f'{{"api_key": "{project.api_token}", "distinct_id": "u", "person_properties": {{"plan": {nested}}}}}'
        response = post_flags(client, raw)
        assert response.status_code in (200, 400), depth


# Targeting many flags share, one per kind of property test.
SHARED_TARGETING = [
    [],
    [{"key": "plan", "type": "person", "operator": "exact", "value": ["pro", "team"]}],
    [{"key": "country", "type": "person", "operator": "is_not", "value": "US"}],
    [{"key": "email", "type": "person", "operator": "icontains", "value": "@acme"}],
    [{"key": "age", "type": "person", "operator": "gte", "value": 18}],
    [{"key": "signed_up", "type": "person", "operator": "is_date_before", "value": "-30d"}],
    [{"key": "app_version", "type": "person", "operator": "semver_gte", "value": "2.0.0"}],
    [{"key": "plan", "type": "person", "operator": "regex", "value": "^t"}],
    [{"key": "beta", "type": "person", "operator": "is_set"}, {"key": "age", "operator": "lt", "value": 65}],
]
USERS = [
    {
        "distinct_id": "user-1",
        "person_properties": {
            "plan": "pro",
            "country": "FR",
            "email": "a@acme.com",
            "age": 30,
            "signed_up": "2020-01-01",
            "app_version": "2.1.0",
            "beta": True,
        },
        "groups": {"company": "acme"},
    },
    {"distinct_id": "user-2", "person_properties": {"plan": "team", "country": "US", "age": "17"}},
    {"distinct_id": "user-5"},
]
ANSWER_PATHS = ["/flags/?v=2", "/flags/?v=1", "/decide/", "/decide/?v=2", "/decide/?v=3", "/decide/?v=4"]


def shared_targeting_flags(project) -> list[str]:
    """Two flags of each configuration for each shared targeting (so they are evaluated together),
    and flags the general evaluator answers: a cohort, a group and a flag dependency."""
    configurations = [
        {"rollout": 50},
        {"rollout": 30, "multivariate": FIFTY_FIFTY, "payloads": PAYLOADS},
        {"rollout": 100, "multivariate": FIFTY_FIFTY, "holdout": {"id": 7, "exclusion_percentage": 50}},
        {"rollout": 80, "variant": "test", "multivariate": FIFTY_FIFTY, "early_exit": True},
        {"rollout": 100, "payloads": {"true": '"on"'}, "active": False},
    ]
    keys = []
    for targeting_index, targeting in enumerate(SHARED_TARGETING):
        for configuration_index, configuration in enumerate(configurations):
            for copy in range(2):
                conditions = [
                    {"properties": targeting, "rollout_percentage": configuration["rollout"] - 10 * copy},
                    {"properties": [], "rollout_percentage": 10},
                ]
                if "variant" in configuration:
                    conditions[0]["variant"] = configuration["variant"]
                filters = {"groups": conditions}
                filters.update(
                    (name, configuration[name])
                    for name in ("multivariate", "payloads", "holdout", "early_exit")
                    if name in configuration
                )
                key = f"shared-{targeting_index}-{configuration_index}-{copy}"
                FeatureFlagFactory(
                    project=project, key=key, filters=filters, active=configuration.get("active", True)
                )
                keys.append(key)
    cohort = CohortFactory(project=project)
    GroupTypeMappingFactory(project=project, group_type="company", group_type_index=0)
    general = {
        "cohort-flag": {"groups": [{"properties": [{"key": "id", "type": "cohort", "value": cohort.id}]}]},
        "group-flag": {
            "groups": [{"properties": [], "rollout_percentage": 50}],
            "aggregation_group_type_index": 0,
        },
        "dependent-flag": {
            "groups": [
                {
                    "properties": [
                        {
                            "key": "shared-1-0-0",
                            "type": "flag",
                            "operator": "flag_evaluates_to",
                            "value": True,
                        }
                    ]
                }
            ]
        },
    }
    for key, filters in general.items():
        FeatureFlagFactory(project=project, key=key, filters=filters)
        keys.append(key)
    return sorted(keys)


def without_request_fields(answer: dict) -> dict:
    return {field: value for field, value in answer.items() if field not in ("requestId", "evaluatedAt")}


def test_all_flags_at_once_answer_what_each_flag_asked_alone_answers(client, project):
    keys = shared_targeting_flags(project)
    for path in ANSWER_PATHS:
        for user in USERS:
            body = {"api_key": project.api_token, **user}
            at_once = post_flags(client, body, path=path).json()
            one_by_one: dict = {}
            for key in keys:
                alone = post_flags(client, {**body, "flag_keys_to_evaluate": [key]}, path=path).json()
                for field, value in without_request_fields(alone).items():
                    if isinstance(value, dict):
                        one_by_one.setdefault(field, {}).update(value)
                    elif isinstance(value, list):
                        one_by_one.setdefault(field, []).extend(value)
                    else:
                        one_by_one[field] = value
            assert without_request_fields(at_once) == one_by_one, (path, user["distinct_id"])
            if path == "/flags/?v=2":
                assert list(at_once["flags"]) == keys
    answers = {
        user["distinct_id"]: post_flags(client, {"api_key": project.api_token, **user}).json()["flags"]
        for user in USERS
    }
    reasons = {record["reason"]["code"] for flags in answers.values() for record in flags.values()}
    # Every kind of outcome is among those compared.
    assert reasons == {
        "condition_match",
        "out_of_rollout_bound",
        "no_condition_match",
        "holdout_condition_value",
        "flag_disabled",
        "no_group_type",
    }

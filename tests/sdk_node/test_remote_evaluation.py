"""posthog-node without a secret key: every read is `POST /flags`, and what each getter returns equals
the server's own `/flags` answer and what posthog-python returns for the same user. See `conftest.py`."""

import json

import pytest
from django.test import Client

from tests.factories import FeatureFlagFactory
from tests.sdk_node.conftest import KEYS, UNDEFINED, node_options, python_options

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:`get_feature_flag.*is deprecated:DeprecationWarning"),
]

IDS = [f"user_{number}" for number in range(24)]
SINGLE_READ_IDS = IDS[:12]


def server_flags(sdk, distinct_id: str) -> dict[str, dict]:
    """The server's own `/flags` records for the user, asked without any SDK."""
    options = python_options(distinct_id)
    body = {"token": sdk.project.api_token, "distinct_id": distinct_id, **options}
    response = Client().post("/flags/?v=2", body, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()["flags"]


def value_of(record: dict):
    return (record["variant"] or True) if record["enabled"] else False


def payload_of(record: dict):
    payload = record["metadata"]["payload"]
    return json.loads(payload) if record["enabled"] and payload is not None else None


def test_single_flag_getters_equal_the_flags_endpoint_and_the_python_sdk(sdk, node, flags):
    remote, python = node.remote(), sdk.remote()
    cases = [(key, distinct_id) for distinct_id in SINGLE_READ_IDS for key in KEYS]
    quiet = {"sendFeatureFlagEvents": False}

    values = remote.calls("getFeatureFlag", [[key, did, node_options(did, **quiet)] for key, did in cases])
    enabled = remote.calls("isFeatureEnabled", [[key, did, node_options(did, **quiet)] for key, did in cases])
    payloads = remote.calls(
        "getFeatureFlagPayload", [[key, did, UNDEFINED, node_options(did)] for key, did in cases]
    )

    records = {distinct_id: server_flags(sdk, distinct_id) for distinct_id in SINGLE_READ_IDS}
    for (key, distinct_id), value, is_enabled, payload in zip(cases, values, enabled, payloads, strict=True):
        record = records[distinct_id][key]
        assert value == value_of(record), (key, distinct_id)
        assert is_enabled is bool(value_of(record)), (key, distinct_id)
        assert payload == payload_of(record), (key, distinct_id)
        from_python = python.get_feature_flag(
            key, distinct_id, send_feature_flag_events=False, **python_options(distinct_id)
        )
        assert value == from_python, (key, distinct_id)

    seen = {key: {value for (k, _), value in zip(cases, values, strict=True) if k == key} for key in KEYS}
    assert seen["fifty-fifty"] == {"control", "test"}
    assert seen["boolean-half"] == {True, False}
    assert seen["paused"] == {False}
    assert seen["plan-gated"] == {True, False}
    assert seen["pro-cohort"] == {True, False}
    assert seen["big-companies"] == {True, False}
    assert seen["group-aggregated"] >= {"control", "test"}
    served = [payload for (key, _), payload in zip(cases, payloads, strict=True) if key == "fifty-fifty"]
    assert {json.dumps(payload) for payload in served} == {'{"color": "grey"}', '{"color": "blue"}'}
    # The spec's vectors (C.11): a plain 50/50 flag keyed `exp-flag` splits these users so.
    FeatureFlagFactory(project=sdk.project, key="exp-flag")
    expected = {"user_1": "test", "user_2": "test", "user_3": "control", "user_6": "control"}
    assert remote.calls("getFeatureFlag", [["exp-flag", did] for did in expected]) == list(expected.values())


def test_all_flags_equal_the_flags_endpoint_and_the_python_sdk(sdk, node, flags):
    remote, python = node.remote(), sdk.remote()
    all_flags = remote.calls("getAllFlags", [[did, node_options(did)] for did in IDS])
    with_payloads = remote.calls("getAllFlagsAndPayloads", [[did, node_options(did)] for did in IDS])

    for distinct_id, values, both in zip(IDS, all_flags, with_payloads, strict=True):
        records = server_flags(sdk, distinct_id)
        assert values == {key: value_of(record) for key, record in records.items()}, distinct_id
        assert both["featureFlags"] == values
        from_python = python.get_all_flags_and_payloads(distinct_id, **python_options(distinct_id))
        assert values == from_python["featureFlags"], distinct_id
        served_payloads = {key: payload for key, payload in both["featureFlagPayloads"].items() if payload}
        assert served_payloads == {
            key: json.loads(raw) for key, raw in from_python["featureFlagPayloads"].items()
        }, distinct_id

        snapshot = remote.snapshot(
            distinct_id, KEYS, **node_options(distinct_id, sendFeatureFlagEvents=False)
        )
        assert sorted(snapshot["keys"]) == sorted(KEYS)
        assert {key: read["value"] for key, read in snapshot["values"].items()} == values
        assert {key: read["payload"] for key, read in snapshot["values"].items() if read["payload"]} == (
            served_payloads
        )


def test_a_missing_flag_or_an_unknown_token_is_no_result(sdk, node, flags):
    remote = node.remote()
    assert (
        remote.call("getFeatureFlag", "no-such-flag", "user_1", {"sendFeatureFlagEvents": False}) is UNDEFINED
    )
    assert remote.call("getFeatureFlagPayload", "no-such-flag", "user_1") is UNDEFINED

    stranger = node.client(token="phc_not_a_project")
    assert (
        stranger.call("getFeatureFlag", "fifty-fifty", "user_1", {"sendFeatureFlagEvents": False})
        is UNDEFINED
    )
    assert stranger.call("getAllFlags", "user_1") == {}
    # The SDK reports the 401s as error events, as it should; the harness checks only the rest.
    errors = node.problems()["errors"]
    assert errors and all("401" in error for error in errors), errors
    node.forget_problems()

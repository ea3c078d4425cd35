"""posthog-node with a secret key loads the flag definitions from this server and evaluates them in
process; its local answers equal the server's remote answers (same bucketing). See `conftest.py`."""

from collections import Counter

import pytest

from flags.models import FeatureFlag
from tests.sdk.test_experiment_lifecycle_sdk import manager, post  # noqa: F401
from tests.sdk_node.conftest import KEYS, UNDEFINED, node_options

pytestmark = pytest.mark.django_db(transaction=True)

LOCALLY = {"onlyEvaluateLocally": True, "sendFeatureFlagEvents": False}
QUIET = {"sendFeatureFlagEvents": False}
ROLLOUT = 60
VARIANTS = {"control": 34, "cheap": 33, "premium": 33}


def test_an_experiment_flag_buckets_500_ids_locally_as_the_server_does(node, manager):  # noqa: F811
    experiment = post(
        manager,
        "experiments/",
        {
            "name": "Pricing",
            "feature_flag_key": "pricing-test",
            "parameters": {
                "feature_flag_variants": [
                    {"key": key, "split_percent": share} for key, share in VARIANTS.items()
                ],
                "rollout_percentage": ROLLOUT,
                "feature_flag_payloads": {"premium": {"price": 20}},
            },
        },
    )
    post(manager, f"experiments/{experiment['id']}/launch/")
    key = experiment["feature_flag_key"]
    with_personal_key = node.local(secret=node.personal_api_key)
    # strictLocalEvaluation: the client never asks /flags, so every answer below is its own.
    with_secret_key = node.local(strictLocalEvaluation=True)
    remote = node.remote()
    assert with_personal_key.definitions == [key]
    assert with_secret_key.definitions == [key]

    ids = [f"visitor-{number}" for number in range(500)]
    from_server = remote.calls("getFeatureFlag", [[key, distinct_id, QUIET] for distinct_id in ids])
    assert with_personal_key.calls("getFeatureFlag", [[key, did, LOCALLY] for did in ids]) == from_server
    assert with_secret_key.calls("getFeatureFlag", [[key, did, QUIET] for did in ids]) == from_server

    counts = Counter(from_server)
    assert set(counts) == {*VARIANTS, False}
    assert abs(100 * counts[False] / len(ids) - (100 - ROLLOUT)) <= 7
    for variant, share in VARIANTS.items():
        assert abs(100 * counts[variant] / len(ids) - ROLLOUT * share / 100) <= 7

    payloads = [
        [key, did, value, {"onlyEvaluateLocally": True}] for did, value in zip(ids, from_server, strict=True)
    ]
    local_payloads = with_secret_key.calls("getFeatureFlagPayload", payloads)
    for value, payload in zip(from_server, local_payloads, strict=True):
        assert payload == ({"price": 20} if value == "premium" else None), value


def test_every_flag_shape_agrees_locally_and_remotely(node, flags):
    local, remote = node.local(), node.remote()
    assert sorted(local.definitions) == sorted(KEYS)
    ids = [f"user_{number}" for number in range(150)]

    from_server = remote.calls("getAllFlagsAndPayloads", [[did, node_options(did)] for did in ids])
    from_definitions = local.calls(
        "getAllFlagsAndPayloads", [[did, node_options(did, onlyEvaluateLocally=True)] for did in ids]
    )
    for distinct_id, served, computed in zip(ids, from_server, from_definitions, strict=True):
        assert computed["featureFlags"] == served["featureFlags"], distinct_id
        assert {key: payload for key, payload in computed["featureFlagPayloads"].items() if payload} == {
            key: payload for key, payload in served["featureFlagPayloads"].items() if payload
        }, distinct_id

    single = [[key, did, node_options(did, **LOCALLY)] for did in ids[:20] for key in KEYS]
    assert local.calls("getFeatureFlag", single) == [
        served["featureFlags"][key] for served in from_server[:20] for key in KEYS
    ]
    # Without the properties a condition needs, the SDK cannot decide locally and says so.
    assert local.call("getFeatureFlag", "plan-gated", "user_1", LOCALLY) is UNDEFINED


def test_definitions_polls_revalidate_with_the_etag_and_see_changes(node, flags):
    local = node.local()
    local.call("debug", True)
    local.call("reloadFeatureFlags")
    assert any("Flags not modified (304)" in message for message in node.messages("debug", "log"))

    flag = FeatureFlag.objects.get(project=node.project, key="fifty-fifty")
    flag.active = False
    flag.save()
    assert local.call("getFeatureFlag", "fifty-fifty", "user_1", LOCALLY) in ("control", "test")
    local.call("reloadFeatureFlags")
    assert local.call("getFeatureFlag", "fifty-fifty", "user_1", LOCALLY) is False

    # A wrong key loads nothing, and reads then go to /flags.
    wrong = node.local(secret="phx_" + "x" * 43)
    assert wrong.definitions == []
    assert wrong.call("getFeatureFlag", "three-way", "user_1", LOCALLY) is UNDEFINED
    assert wrong.call("getFeatureFlag", "three-way", "user_1", QUIET) == local.call(
        "getFeatureFlag", "three-way", "user_1", LOCALLY
    )
    problems = node.problems()
    assert any("secret key is invalid" in error for error in problems["errors"]), problems
    node.forget_problems()

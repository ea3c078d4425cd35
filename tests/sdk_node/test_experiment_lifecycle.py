"""An experiment's lifecycle, driven through the experiments API, as posthog-node sees it: remotely at
once and locally after the next definitions poll, with both answers equal. See `conftest.py`."""

import pytest

from tests.sdk.test_experiment_lifecycle_sdk import manager, post  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

IDS = [f"user_{number}" for number in range(40)]
QUIET = {"sendFeatureFlagEvents": False}


def served(node, remote, local, key: str) -> list:
    """Every id's value from `/flags`, after checking the local client answers the same."""
    node.refresh()
    from_server = remote.calls("getFeatureFlag", [[key, did, QUIET] for did in IDS])
    from_definitions = local.calls(
        "getFeatureFlag", [[key, did, {**QUIET, "onlyEvaluateLocally": True}] for did in IDS]
    )
    assert from_definitions == from_server
    return from_server


def test_launch_pause_resume_and_ship_as_posthog_node_sees_them(node, manager):  # noqa: F811
    remote, local = node.remote(), node.local(secret=node.personal_api_key)
    experiment = post(
        manager,
        "experiments/",
        {
            "name": "Checkout",
            "feature_flag_key": "checkout-test",
            "parameters": {"feature_flag_payloads": {"test": {"button": "green"}}},
        },
    )
    key, path = experiment["feature_flag_key"], f"experiments/{experiment['id']}"
    assert set(served(node, remote, local, key)) == {False}

    post(manager, f"{path}/launch/")
    launched = served(node, remote, local, key)
    assert set(launched) == {"control", "test"}
    payloads = remote.calls("getFeatureFlagPayload", [[key, did] for did in IDS])
    assert payloads == [{"button": "green"} if value == "test" else None for value in launched]

    post(manager, f"{path}/pause/")
    assert set(served(node, remote, local, key)) == {False}
    assert remote.call("isFeatureEnabled", key, "user_1", QUIET) is False

    post(manager, f"{path}/resume/")
    assert served(node, remote, local, key) == launched  # the same users get the same variants again

    shipped = post(manager, f"{path}/ship_variant/", {"variant_key": "test"})
    assert shipped["status"] == "stopped"
    assert set(served(node, remote, local, key)) == {"test"}
    assert remote.call("getFeatureFlagPayload", key, "user_1") == {"button": "green"}

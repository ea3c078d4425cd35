"""posthog-node's `getRemoteConfigPayload` against a live server (see `conftest.py`)."""

import pytest

from flags.services import flag_create

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = {"theme": "dark", "retries": 3}


@pytest.mark.parametrize("encrypted", [False, True])
def test_get_remote_config_payload_returns_the_config(node, encrypted):
    flag_create(
        project=node.project,
        user=None,
        key="app-config",
        filters={"groups": [{"properties": [], "rollout_percentage": 0}], "payloads": {"true": CONFIG}},
        is_remote_configuration=True,
        has_encrypted_payloads=encrypted,
    )
    client = node.client(personalApiKey=node.personal_api_key)
    # posthog-node parses the JSON text PostHog answers into the config itself.
    assert client.call("getRemoteConfigPayload", "app-config") == CONFIG
    assert node.problems() == {"logged": [], "errors": []}

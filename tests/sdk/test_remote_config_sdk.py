"""posthog-python's `get_remote_config_payload` against a live server (see `conftest.py`)."""

import json
import logging

import pytest

from flags.services import flag_create
from tests.factories import FeatureFlagFactory

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = {"theme": "dark", "retries": 3}


def remote_config_flag(project, key: str, *, encrypted: bool) -> None:
    flag_create(
        project=project,
        user=None,
        key=key,
        filters={"groups": [{"properties": [], "rollout_percentage": 0}], "payloads": {"true": CONFIG}},
        is_remote_configuration=True,
        has_encrypted_payloads=encrypted,
    )


@pytest.mark.parametrize("encrypted", [False, True])
def test_get_remote_config_payload_returns_the_config(sdk, encrypted):
    remote_config_flag(sdk.project, "app-config", encrypted=encrypted)
    for secret in (sdk.personal_api_key, sdk.project_secret_key):
        client = sdk.client(send=False, secret_key=secret, enable_local_evaluation=False)
        # The SDK hands back the payload as PostHog stores it: the config's JSON text.
        assert json.loads(client.get_remote_config_payload("app-config")) == CONFIG
    assert sdk.errors == []


def test_an_encrypted_config_stays_out_of_flag_evaluation(sdk):
    remote_config_flag(sdk.project, "secret-config", encrypted=True)
    remote_config_flag(sdk.project, "plain-config", encrypted=False)
    local = sdk.local()
    assert local.get_feature_flag_payload("plain-config", "user-1", only_evaluate_locally=True) == CONFIG
    assert local.get_feature_flag("secret-config", "user-1", only_evaluate_locally=True) is None
    assert sdk.remote().get_feature_flag("secret-config", "user-1", send_feature_flag_events=False) is None


def test_a_flag_that_is_not_remote_config_gives_none(sdk):
    FeatureFlagFactory(project=sdk.project, key="ordinary")
    client = sdk.client(send=False, secret_key=sdk.personal_api_key, enable_local_evaluation=False)
    assert client.get_remote_config_payload("ordinary") is None
    assert client.get_remote_config_payload("missing") is None
    assert (
        sdk.log.messages(logging.WARNING)
        == ["[PostHog] [FEATURE FLAGS] Unable to get decrypted feature flag payload: [PostHog]  (404)"] * 2
    )
    sdk.log.records.clear()

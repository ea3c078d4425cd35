"""Every lifecycle transition, made through the experiments API, is what the real SDK then sees —
remotely and from local definitions alike (the seed pages' promises for launch, pause, end, ship)."""

import pytest

from accounts.models import OrganizationMembership
from tests.conftest import keyed_client
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

IDS = [f"user_{n}" for n in range(60)]


@pytest.fixture
def manager(sdk):
    """An all-scopes management API client for the SDK harness's project."""
    user = UserFactory(current_project=sdk.project)
    MembershipFactory(
        organization=sdk.project.organization, user=user, level=OrganizationMembership.Level.OWNER
    )
    return keyed_client(user, sdk.project)


def values(sdk, remote, local, key: str) -> set:
    sdk.refresh()
    seen = sdk.assert_parity(remote, local, IDS)
    return {flags.get(key, False) for flags in seen.values()}


def post(manager, path: str, body: dict | None = None) -> dict:
    response = manager.post(manager.url(path), body or {}, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def test_launch_pause_resume_ship_as_the_sdk_sees_them(sdk, manager):
    remote, local = sdk.remote(), sdk.local()
    experiment = post(manager, "experiments/", {"name": "Checkout", "feature_flag_key": "checkout-test"})
    key = experiment["feature_flag_key"]
    assert values(sdk, remote, local, key) == {False}

    post(manager, f"experiments/{experiment['id']}/launch/")
    assert values(sdk, remote, local, key) == {"control", "test"}

    post(manager, f"experiments/{experiment['id']}/pause/")
    assert values(sdk, remote, local, key) == {False}

    post(manager, f"experiments/{experiment['id']}/resume/")
    assert values(sdk, remote, local, key) == {"control", "test"}

    shipped = post(manager, f"experiments/{experiment['id']}/ship_variant/", {"variant_key": "test"})
    assert shipped["status"] == "stopped"
    assert values(sdk, remote, local, key) == {"test"}


def test_end_and_reset_leave_the_flag_serving(sdk, manager):
    remote, local = sdk.remote(), sdk.local()
    experiment = post(
        manager,
        "experiments/",
        {
            "name": "Three way",
            "feature_flag_key": "three-way-test",
            "parameters": {
                "feature_flag_variants": [
                    {"key": "control", "split_percent": 34},
                    {"key": "a", "split_percent": 33},
                    {"key": "b", "split_percent": 33},
                ]
            },
        },
    )
    key = experiment["feature_flag_key"]
    post(manager, f"experiments/{experiment['id']}/launch/")
    running = values(sdk, remote, local, key)
    assert running == {"control", "a", "b"}

    assert post(manager, f"experiments/{experiment['id']}/end/", {"conclusion": "won"})["status"] == "stopped"
    assert values(sdk, remote, local, key) == running

    assert post(manager, f"experiments/{experiment['id']}/reset/")["status"] == "draft"
    assert values(sdk, remote, local, key) == running

"""The real posthog-python SDK assigns a few thousand users, its `$feature_flag_called` events and
conversions reach `/batch/`, and `/query/` shows the planted effect with the expected significance —
and a sample ratio mismatch when exposures of one variant are withheld on purpose."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import OrganizationMembership
from events.models import Event
from tests.conftest import keyed_client
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

USERS = 3000
CONVERSION = {"control": 0.10, "test": 0.20}
PURCHASE_FUNNEL = {
    "kind": "ExperimentMetric",
    "metric_type": "funnel",
    "series": [{"kind": "EventsNode", "event": "purchase"}],
}


@pytest.fixture
def manager(sdk):
    user = UserFactory(current_project=sdk.project)
    MembershipFactory(
        organization=sdk.project.organization, user=user, level=OrganizationMembership.Level.OWNER
    )
    return keyed_client(user, sdk.project)


def launched_experiment(manager, key: str) -> int:
    created = manager.post(manager.url("experiments/"), {"name": key, "feature_flag_key": key}, format="json")
    assert created.status_code == 201, created.content
    launched = manager.post(manager.url(f"experiments/{created.json()['id']}/launch/"), {}, format="json")
    assert launched.status_code == 200, launched.content
    return created.json()["id"]


def query(manager, body: dict) -> dict:
    response = manager.post(
        manager.url("query/"), {"query": body, "refresh": "force_blocking"}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def run_users(sdk, key: str, *, withhold_test_share: float = 0.0) -> dict[str, int]:
    """Evaluate the flag for every user through the SDK (which reports the exposure), convert them
    with the variant's rate, and withhold the exposure of `withhold_test_share` of test users."""
    # Local evaluation; events go to /batch/ from the SDK's background consumer.
    client = sdk.client(secret_key=sdk.project_secret_key)
    client.load_feature_flags()
    rng = random.Random(13)
    assigned = {"control": 0, "test": 0}
    for number in range(USERS):
        distinct_id = f"{key}-user-{number}"
        variant = client.get_feature_flag(key, distinct_id, send_feature_flag_events=False)
        assert variant in assigned
        if variant == "test" and rng.random() < withhold_test_share:
            continue
        client.get_feature_flag(key, distinct_id)
        assigned[variant] += 1
        if rng.random() < CONVERSION[variant]:
            # A second later: the server corrects each batch for the sender's clock separately, so
            # events milliseconds apart in different batches may swap order.
            later = datetime.now(UTC) + timedelta(seconds=1)
            client.capture("purchase", distinct_id=distinct_id, properties={"amount": 10}, timestamp=later)
    client.flush()
    return assigned


def test_the_planted_effect_is_found_and_the_split_is_healthy(sdk, manager):
    experiment_id = launched_experiment(manager, "results-sdk")
    assigned = run_users(sdk, "results-sdk")
    exposures = Event.objects.filter(project=sdk.project, event="$feature_flag_called")
    assert exposures.count() == USERS

    result = query(
        manager, {"kind": "ExperimentQuery", "experiment_id": experiment_id, "metric": PURCHASE_FUNNEL}
    )
    baseline = result["baseline"]
    [test] = result["variant_results"]
    assert (baseline["number_of_samples"], test["number_of_samples"]) == (
        assigned["control"],
        assigned["test"],
    )
    purchases = Event.objects.filter(project=sdk.project, event="purchase")
    assert baseline["sum"] + test["sum"] == purchases.count()
    assert test["chance_to_win"] > 0.999
    assert test["significant"] is True
    low, high = test["credible_interval"]
    assert 0.4 < low < 1.0 < high < 1.6  # the planted lift is +100%

    exposure = query(
        manager,
        {
            "kind": "ExperimentExposureQuery",
            "experiment_id": experiment_id,
            "experiment_name": "results-sdk",
            "feature_flag": {"key": "results-sdk"},
        },
    )
    assert exposure["total_exposures"] == assigned
    assert exposure["sample_ratio_mismatch"]["p_value"] > 0.001


def test_a_skewed_split_is_flagged(sdk, manager):
    experiment_id = launched_experiment(manager, "results-sdk-skewed")
    assigned = run_users(sdk, "results-sdk-skewed", withhold_test_share=0.3)
    exposure = query(
        manager,
        {
            "kind": "ExperimentExposureQuery",
            "experiment_id": experiment_id,
            "experiment_name": "results-sdk-skewed",
            "feature_flag": {"key": "results-sdk-skewed"},
        },
    )
    assert exposure["total_exposures"] == assigned
    assert exposure["sample_ratio_mismatch"]["expected"] == {
        "control": pytest.approx(sum(assigned.values()) / 2),
        "test": pytest.approx(sum(assigned.values()) / 2),
    }
    assert exposure["sample_ratio_mismatch"]["p_value"] < 0.001

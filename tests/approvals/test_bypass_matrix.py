"""Every gated action key, through every write path that can perform it, is gated: the request is
answered 409, one change request is stored, and nothing else changes (no experiment, flag, holdout
or activity write)."""

from collections.abc import Callable

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from approvals.models import ChangeRequest
from experiments.models import Experiment
from tests.approvals.helpers import make_policy, member_client, pending_requests, world_state
from tests.factories import ExperimentFactory, ExperimentHoldoutFactory, FeatureFlagFactory, UserFactory

pytestmark = pytest.mark.django_db

DRAFT, RUNNING, PAUSED, STOPPED = "draft", "running", "paused", "stopped"


def make_experiment(api, status: str, holdout=None) -> Experiment:
    start = None if status == DRAFT else "2024-01-01T00:00:00Z"
    end = "2024-02-01T00:00:00Z" if status == STOPPED else None
    experiment = ExperimentFactory(project=api.project, start_date=start, end_date=end, holdout=holdout)
    experiment.feature_flag.active = status in (RUNNING, STOPPED)
    if holdout is not None:
        experiment.feature_flag.filters = {
            **experiment.feature_flag.filters,
            "holdout": holdout.flag_holdout_filter(),
        }
    experiment.feature_flag.save()
    return experiment


def action(name: str, body: dict | None = None) -> Callable:
    def perform(api, experiment: Experiment):
        return api.post(api.url(f"experiments/{experiment.id}/{name}/"), body or {}, format="json")

    return perform


def patch(body: dict) -> Callable:
    def perform(api, experiment: Experiment):
        return api.patch(api.url(f"experiments/{experiment.id}/"), body, format="json")

    return perform


def admin_action(name: str) -> Callable:
    def perform(api, experiment: Experiment):
        client = Client()
        client.force_login(UserFactory(is_staff=True, is_superuser=True))
        response = client.post(
            "/admin/experiments/experiment/",
            {"action": name, "_selected_action": [experiment.pk]},
            follow=True,
        )
        messages = [str(message) for message in get_messages(response.wsgi_request)]
        assert any("pending approval" in message for message in messages), messages
        return None

    return perform


def flag_patch(body: dict) -> Callable:
    def perform(api, experiment: Experiment):
        return api.patch(api.url(f"feature_flags/{experiment.feature_flag_id}/"), body, format="json")

    return perform


def create_launched(api, experiment: Experiment):
    return api.post(
        api.url("experiments/"),
        {"name": "Born running", "feature_flag_key": "born-running", "start_date": "2024-01-01T00:00:00Z"},
        format="json",
    )


def holdout_patch(api, experiment: Experiment):
    return api.patch(
        api.url(f"experiment_holdouts/{experiment.holdout_id}/"),
        {"filters": [{"properties": [], "rollout_percentage": 35}]},
        format="json",
    )


def holdout_delete(api, experiment: Experiment):
    return api.delete(api.url(f"experiment_holdouts/{experiment.holdout_id}/"))


RUNNING_SPLIT = {
    "parameters": {
        "feature_flag_variants": [
            {"key": "control", "split_percent": 30},
            {"key": "test", "split_percent": 70},
        ]
    },
    "update_feature_flag_params": True,
}
DRAFT_SPLIT = {
    "parameters": {
        "feature_flag_variants": [
            {"key": "control", "split_percent": 30},
            {"key": "test", "split_percent": 70},
        ]
    }
}
FLAG_ROLLOUT = {
    "filters": {
        "groups": [{"properties": [], "rollout_percentage": 40}],
        "multivariate": {
            "variants": [
                {"key": "control", "rollout_percentage": 50},
                {"key": "test", "rollout_percentage": 50},
            ]
        },
    }
}

MATRIX = [
    ("experiment.launch", DRAFT, action("launch")),
    ("experiment.launch", DRAFT, patch({"start_date": "2024-01-01T00:00:00Z"})),
    ("experiment.launch", DRAFT, admin_action("launch")),
    ("experiment.launch", DRAFT, create_launched),
    ("experiment.pause", RUNNING, action("pause")),
    ("experiment.pause", RUNNING, admin_action("pause")),
    ("experiment.resume", PAUSED, action("resume")),
    ("experiment.resume", PAUSED, admin_action("resume")),
    ("experiment.end", RUNNING, action("end")),
    ("experiment.end", RUNNING, patch({"end_date": "2024-03-01T00:00:00Z"})),
    ("experiment.end", RUNNING, admin_action("end")),
    ("experiment.ship_variant", RUNNING, action("ship_variant", {"variant_key": "test"})),
    ("experiment.ship_variant", STOPPED, action("ship_variant", {"variant_key": "test"})),
    ("experiment.reset", STOPPED, action("reset")),
    ("experiment.reset", RUNNING, admin_action("reset")),
    ("experiment.archive", STOPPED, action("archive")),
    ("experiment.archive", STOPPED, patch({"archived": True})),
    ("experiment.archive", STOPPED, admin_action("archive")),
    ("experiment.update", DRAFT, patch({"name": "Renamed"})),
    ("experiment.update", DRAFT, patch(DRAFT_SPLIT)),
    ("experiment.update", RUNNING, patch(RUNNING_SPLIT)),
    ("experiment.update", RUNNING, flag_patch(FLAG_ROLLOUT)),
    ("experiment.update", RUNNING, holdout_patch),
    ("experiment.delete", DRAFT, patch({"deleted": True})),
    ("feature_flag.enable", DRAFT, action("launch")),
    ("feature_flag.enable", PAUSED, action("resume")),
    ("feature_flag.enable", PAUSED, flag_patch({"active": True})),
    ("feature_flag.enable", DRAFT, patch({"start_date": "2024-01-01T00:00:00Z"})),
    ("feature_flag.enable", DRAFT, create_launched),
    ("feature_flag.disable", RUNNING, action("pause")),
    ("feature_flag.disable", RUNNING, flag_patch({"active": False})),
    ("feature_flag.update", RUNNING, action("ship_variant", {"variant_key": "test"})),
    ("feature_flag.update", RUNNING, patch(RUNNING_SPLIT)),
    ("feature_flag.update", DRAFT, patch(DRAFT_SPLIT)),
    ("feature_flag.update", RUNNING, flag_patch(FLAG_ROLLOUT)),
    ("feature_flag.update", RUNNING, holdout_patch),
    ("feature_flag.update", RUNNING, holdout_delete),
    ("experiment_holdout.update", RUNNING, holdout_patch),
    ("experiment_holdout.delete", RUNNING, holdout_delete),
]


@pytest.mark.parametrize(
    ("action_key", "status", "write"), MATRIX, ids=lambda value: getattr(value, "__name__", str(value))
)
def test_gated_write_stores_only_a_change_request(api, action_key, status, write):
    holdout = ExperimentHoldoutFactory(project=api.project)
    experiment = make_experiment(api, status, holdout=holdout)
    if status == PAUSED:
        experiment.feature_flag.active = False
        experiment.feature_flag.save()
    approver = member_client(api.project)
    make_policy(api.project, action_key, approvers=[approver.user])
    before = world_state()

    response = write(api, experiment)

    if response is not None:
        assert response.status_code == 409, response.content
        body = response.json()
        assert body["code"] == "approval_required"
        assert body["change_request"]["action_key"] == action_key
    assert world_state() == before
    requests = pending_requests()
    assert [request.action_key for request in requests] == [action_key]


def test_an_experiment_policy_governs_before_the_flag_policy(api):
    experiment = make_experiment(api, DRAFT)
    approver = member_client(api.project)
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    make_policy(api.project, "feature_flag.enable", approvers=[approver.user])
    response = api.post(api.url(f"experiments/{experiment.id}/launch/"))
    assert response.status_code == 409
    assert ChangeRequest.objects.get().action_key == "experiment.launch"


def test_two_policies_for_one_write_is_a_conflict_and_nothing_is_stored(api):
    experiment = make_experiment(api, PAUSED)
    approver = member_client(api.project)
    enable = make_policy(api.project, "feature_flag.enable", approvers=[approver.user])
    update = make_policy(api.project, "feature_flag.update", approvers=[approver.user])
    flag = FeatureFlagFactory(project=api.project, active=False)
    before = world_state()
    response = api.patch(
        api.url(f"feature_flags/{flag.id}/"), {"active": True, **FLAG_ROLLOUT}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "policy_conflict"
    assert body["error"] == "This change matches multiple approval policies"
    assert {item["id"] for item in body["conflicting_policies"]} == {str(enable.id), str(update.id)}
    assert (
        body["guidance"] == "Split your changes into separate API calls to address each policy independently"
    )
    assert world_state() == before
    assert not ChangeRequest.objects.exists()
    assert experiment.feature_flag.active is False


def test_applying_a_request_cannot_bypass_another_policy(api):
    """A PATCH gated by experiment.update that also launches the experiment: a feature_flag.enable
    policy added before approval still gates the replay, so the request fails and nothing changes."""
    experiment = make_experiment(api, DRAFT)
    approver = member_client(api.project)
    make_policy(api.project, "experiment.update", approvers=[approver.user])
    response = api.patch(
        api.url(f"experiments/{experiment.id}/"),
        {"name": "Go", "start_date": "2024-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 409
    change_request_id = response.json()["change_request_id"]
    make_policy(api.project, "feature_flag.enable", approvers=[approver.user], organization_wide=True)
    before = world_state()

    outcome = approver.post(api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json")

    assert outcome.status_code == 200
    assert outcome.json()["status"] == "failed"
    change_request = ChangeRequest.objects.get(pk=change_request_id)
    assert change_request.state == ChangeRequest.State.FAILED
    assert "multiple approval policies" in change_request.apply_error
    assert world_state() == before

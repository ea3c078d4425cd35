from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import OrganizationMembership
from approvals.models import Approval, ChangeRequest
from approvals.services import ONLY_PENDING
from experiments.models import Experiment
from flags.models import FeatureFlag
from tests.approvals.helpers import make_policy, member_client, world_state
from tests.factories import ExperimentFactory, FeatureFlagFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def approver(api):
    return member_client(api.project)


@pytest.fixture
def draft(api):
    return ExperimentFactory(project=api.project)


def request_launch(api, experiment) -> str:
    response = api.post(api.url(f"experiments/{experiment.id}/launch/"))
    assert response.status_code == 409, response.content
    return response.json()["change_request_id"]


def test_launch_409_then_approval_applies_it(api, approver, draft):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    response = api.post(api.url(f"experiments/{draft.id}/launch/"))
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == body["status"] == "approval_required"
    assert body["message"] == "A change request has been created and is pending approval."
    assert body["resource_type"] == "experiment"
    assert body["resource_id"] == str(draft.id)
    assert body["required_approvers"] == {"quorum": 1, "users": [approver.user.id], "roles": []}
    assert body["change_request"]["id"] == body["change_request_id"]
    assert body["change_request"]["state"] == "pending"
    assert body["change_request"]["intent_display"]["description"].startswith("Launch experiment")
    assert Experiment.objects.get(pk=draft.pk).start_date is None

    outcome = approver.post(
        api.url(f"change_requests/{body['change_request_id']}/approve/"), {"reason": "go"}, format="json"
    )
    assert outcome.status_code == 200
    result = outcome.json()
    assert result["status"] == "applied"
    assert result["message"] == "Quorum reached. Change applied successfully."
    assert result["result"]["resource_id"] == str(draft.id)
    assert result["change_request"]["state"] == "applied"
    assert result["change_request"]["applied_by"]["id"] == api.user.id

    experiment = api.get(api.url(f"experiments/{draft.id}/")).json()
    assert experiment["status"] == "running"
    assert experiment["feature_flag"]["active"] is True


def test_message_tells_an_approver_that_others_must_approve(api, draft):
    make_policy(api.project, "experiment.launch", approvers=[api.user])
    response = api.post(api.url(f"experiments/{draft.id}/launch/"))
    assert (
        response.json()["message"] == "A change request has been created and is pending approval from others."
    )


def test_a_second_attempt_returns_the_pending_request(api, approver, draft):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    first = request_launch(api, draft)
    response = api.post(api.url(f"experiments/{draft.id}/launch/"))
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "change_request_pending"
    assert body["error"] == "A pending approval request already exists for this action"
    assert body["change_request_id"] == first
    assert body["existing_change_request"]["id"] == first
    assert ChangeRequest.objects.count() == 1


def test_keys_without_approvals_scope_do_not_see_the_request_body(api, approver, draft, make_api):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    response = make_api(scopes=["experiment:write"]).post(api.url(f"experiments/{draft.id}/launch/"))
    assert response.status_code == 409
    assert "change_request" not in response.json()
    assert "change_request_id" in response.json()


def test_reject(api, approver, draft):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    change_request_id = request_launch(api, draft)
    missing_reason = approver.post(api.url(f"change_requests/{change_request_id}/reject/"), {}, format="json")
    assert missing_reason.status_code == 400
    assert missing_reason.json() == {"error": "A reason is required for rejection."}
    response = approver.post(
        api.url(f"change_requests/{change_request_id}/reject/"), {"reason": "not now"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    assert ChangeRequest.objects.get(pk=change_request_id).state == "rejected"
    assert Experiment.objects.get(pk=draft.pk).start_date is None
    again = approver.post(api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json")
    assert again.status_code == 403
    assert again.json()["detail"] == ONLY_PENDING


def test_quorum_of_two(api, draft):
    first, second = member_client(api.project), member_client(api.project)
    make_policy(api.project, "experiment.launch", approvers=[first.user, second.user], quorum=2)
    change_request_id = request_launch(api, draft)
    one = first.post(api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json").json()
    assert one["status"] == "approved"
    assert one["message"] == "Approval recorded. 1/2 approvals received."
    assert ChangeRequest.objects.get(pk=change_request_id).state == "pending"
    voted_again = first.post(api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json")
    assert voted_again.status_code == 400
    assert "already voted" in voted_again.json()["error"]
    two = second.post(api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json").json()
    assert two["status"] == "applied"
    assert Experiment.objects.get(pk=draft.pk).start_date is not None


def test_self_approval(api, draft):
    make_policy(api.project, "experiment.launch", approvers=[api.user])
    change_request_id = request_launch(api, draft)
    refused = api.post(api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "You cannot approve your own change request"

    other = ExperimentFactory(project=api.project)
    ChangeRequest.objects.all().delete()
    make_policy(
        api.project,
        "experiment.launch",
        approvers=[api.user],
        allow_self_approve=True,
        organization_wide=True,
    )
    api.project.approval_policies.all().delete()
    change_request_id = request_launch(api, other)
    allowed = api.post(api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json")
    assert allowed.json()["status"] == "applied"


def test_only_listed_approvers_may_vote(api, approver, draft):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    change_request_id = request_launch(api, draft)
    outsider = member_client(api.project)
    response = outsider.post(api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "You are not in the approver set for this change request"


def test_cancel(api, approver, draft):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    change_request_id = request_launch(api, draft)
    not_mine = approver.post(api.url(f"change_requests/{change_request_id}/cancel/"), {}, format="json")
    assert not_mine.status_code == 403
    assert not_mine.json()["detail"] == "You cannot cancel this change request"
    assert api.get(api.url(f"change_requests/{change_request_id}/")).json()["can_cancel"] is True
    response = api.post(api.url(f"change_requests/{change_request_id}/cancel/"), {}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    change_request = ChangeRequest.objects.get(pk=change_request_id)
    assert change_request.state == "rejected"
    assert Approval.objects.get(change_request=change_request).reason == "Canceled by requester"


def test_cannot_cancel_after_an_approval_unless_stale(api, draft):
    first, second = member_client(api.project), member_client(api.project)
    make_policy(api.project, "experiment.launch", approvers=[first.user, second.user], quorum=2)
    change_request_id = request_launch(api, draft)
    first.post(api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json")
    detail = api.get(api.url(f"change_requests/{change_request_id}/")).json()
    assert detail["can_cancel"] is False
    assert detail["is_requester"] is True
    assert (
        api.post(api.url(f"change_requests/{change_request_id}/cancel/"), {}, format="json").status_code
        == 403
    )

    Experiment.objects.filter(pk=draft.pk).update(name="changed meanwhile", updated_at=timezone.now())
    call_command("validate_change_requests")
    assert ChangeRequest.objects.get(pk=change_request_id).validation_status == "stale"
    assert (
        api.post(api.url(f"change_requests/{change_request_id}/cancel/"), {}, format="json").status_code
        == 200
    )


def test_stale_request_fails_on_apply(api, approver, draft):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    change_request_id = request_launch(api, draft)
    assert (
        api.patch(api.url(f"experiments/{draft.id}/"), {"description": "edited"}, format="json").status_code
        == 200
    )
    outcome = approver.post(
        api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json"
    ).json()
    assert outcome["status"] == "failed"
    assert outcome["message"].startswith("Quorum reached but application failed: Precondition failed")
    change_request = ChangeRequest.objects.get(pk=change_request_id)
    assert change_request.state == "failed"
    assert "modified" in change_request.apply_error
    assert Experiment.objects.get(pk=draft.pk).start_date is None


def test_invalid_on_apply_fails_with_the_reason(api, approver, draft):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    change_request_id = request_launch(api, draft)
    # The experiment was launched by other means meanwhile (here: directly, without touching updated_at).
    Experiment.objects.filter(pk=draft.pk).update(start_date=timezone.now())
    Experiment.objects.filter(pk=draft.pk).update(
        updated_at=ChangeRequest.objects.get().intent["preconditions"]["updated_at"]
    )
    outcome = approver.post(
        api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json"
    ).json()
    assert outcome["status"] == "failed"
    assert (
        "Experiment has already been launched." in ChangeRequest.objects.get(pk=change_request_id).apply_error
    )


def test_expired_requests_cannot_be_approved_and_the_command_expires_them(api, approver, draft):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    change_request_id = request_launch(api, draft)
    ChangeRequest.objects.filter(pk=change_request_id).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    response = approver.post(api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json")
    assert response.status_code == 400
    assert response.json() == {"error": "This change request can no longer be approved."}
    assert ChangeRequest.objects.get(pk=change_request_id).state == "expired"

    other = ExperimentFactory(project=api.project)
    second = request_launch(api, other)
    ChangeRequest.objects.filter(pk=second).update(expires_at=timezone.now() - timedelta(minutes=1))
    call_command("expire_change_requests")
    call_command("expire_change_requests")
    assert ChangeRequest.objects.get(pk=second).state == "expired"


def test_bypass_by_membership_level(api, approver, draft):
    make_policy(api.project, "experiment.launch", approvers=[approver.user], bypass_levels=["8", 15])
    response = api.post(api.url(f"experiments/{draft.id}/launch/"))
    assert response.status_code == 200
    member = member_client(api.project, level=OrganizationMembership.Level.MEMBER)
    other = ExperimentFactory(project=api.project)
    assert member.post(api.url(f"experiments/{other.id}/launch/")).status_code == 409


def test_conditions_select_which_changes_are_gated(api, approver):
    flag = FeatureFlagFactory(
        project=api.project, filters={"groups": [{"properties": [], "rollout_percentage": 30}]}
    )
    make_policy(
        api.project,
        "feature_flag.update",
        approvers=[approver.user],
        conditions={"type": "before_after", "field": "rollout_percentage", "operator": ">", "value": 50},
    )
    low = api.patch(
        api.url(f"feature_flags/{flag.id}/"),
        {"filters": {"groups": [{"properties": [], "rollout_percentage": 40}]}},
        format="json",
    )
    assert low.status_code == 200
    before = world_state()
    high = api.patch(
        api.url(f"feature_flags/{flag.id}/"),
        {"filters": {"groups": [{"properties": [], "rollout_percentage": 80}]}},
        format="json",
    )
    assert high.status_code == 409
    assert world_state() == before
    assert FeatureFlag.objects.get(pk=flag.pk).filters["groups"][0]["rollout_percentage"] == 40


def test_flag_create_is_gated_by_enable_unless_created_inactive(api, approver):
    make_policy(api.project, "feature_flag.enable", approvers=[approver.user])
    active = api.post(
        api.url("feature_flags/"),
        {"key": "new-flag", "filters": {"groups": [{"rollout_percentage": 100}]}},
        format="json",
    )
    assert active.status_code == 409
    assert active.json()["resource_id"] is None
    assert not FeatureFlag.objects.filter(key="new-flag").exists()
    inactive = api.post(
        api.url("feature_flags/"),
        {"key": "off-flag", "active": False, "filters": {"groups": [{"rollout_percentage": 100}]}},
        format="json",
    )
    assert inactive.status_code == 201
    outcome = approver.post(
        api.url(f"change_requests/{active.json()['change_request_id']}/approve/"), {}, format="json"
    )
    assert outcome.json()["status"] == "applied"
    assert FeatureFlag.objects.get(key="new-flag", deleted=False).active is True


def test_list_filters_and_retrieve(api, approver):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    first = request_launch(api, ExperimentFactory(project=api.project))
    second_experiment = ExperimentFactory(project=api.project)
    second = approver.post(api.url(f"experiments/{second_experiment.id}/launch/")).json()["change_request_id"]
    ChangeRequest.objects.filter(pk=second).update(state="applied")

    assert [item["id"] for item in api.get(api.url("change_requests/?state=pending")).json()["results"]] == [
        first
    ]
    both = {
        item["id"] for item in api.get(api.url("change_requests/?state=pending,applied")).json()["results"]
    }
    assert both == {first, second}
    mine = api.get(api.url(f"change_requests/?requester={api.user.id}")).json()["results"]
    assert [item["id"] for item in mine] == [first]
    bad = api.get(api.url("change_requests/?requester=abc"))
    assert bad.status_code == 400
    by_resource = api.get(
        api.url(f"change_requests/?resource_type=experiment&resource_id={second_experiment.id}")
    ).json()
    assert [item["id"] for item in by_resource["results"]] == [second]
    detail = api.get(api.url(f"change_requests/{first}/")).json()
    assert detail["action_key"] == "experiment.launch"
    assert detail["can_approve"] is False
    assert approver.get(api.url(f"change_requests/{first}/")).json()["can_approve"] is True


def test_change_requests_of_another_project_are_invisible(api, other_project, approver, draft):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    change_request_id = request_launch(api, draft)
    other_owner_api = member_client(other_project)
    assert (
        other_owner_api.get(
            f"/api/projects/{other_project.id}/change_requests/{change_request_id}/"
        ).status_code
        == 404
    )
    assert (
        other_owner_api.post(
            f"/api/projects/{api.project.id}/change_requests/{change_request_id}/approve/"
        ).status_code
        == 404
    )


@pytest.mark.parametrize("vote", ["approve", "reject"])
def test_an_outsiders_vote_is_refused_before_its_body_is_read(api, approver, draft, vote):
    """PostHog checks who may vote before it reads the body: an outsider's malformed vote is the
    403, as a well-formed one is."""
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    change_request_id = request_launch(api, draft)
    outsider = member_client(api.project)
    response = outsider.post(
        api.url(f"change_requests/{change_request_id}/{vote}/"), {"reason": {"not": "text"}}, format="json"
    )
    assert response.status_code == 403, response.json()
    assert response.json()["detail"] == "You are not in the approver set for this change request"

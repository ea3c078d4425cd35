import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError as DjangoValidationError
from django.test import Client

from accounts.models import OrganizationMembership
from approvals.models import APPROVER_CONFIG_INVALID, QUORUM_EXCEEDS_APPROVERS, ApprovalPolicy, ChangeRequest
from experiments.models import Experiment
from tests.approvals.helpers import make_policy, member_client
from tests.factories import ExperimentFactory, UserFactory

pytestmark = pytest.mark.django_db


def body(approvers, **extra):
    return {
        "action_key": "feature_flag.enable",
        "approver_config": {"quorum": 1, "users": approvers},
        **extra,
    }


def test_admin_creates_lists_updates_and_deletes(api):
    created = api.post(
        api.url("approval_policies/"), body([api.user.id], allow_self_approve=False), format="json"
    )
    assert created.status_code == 201
    policy = created.json()
    assert policy["approver_config"] == {"quorum": 1, "users": [api.user.id], "roles": []}
    assert policy["expires_after"] == "14 00:00:00"
    assert policy["enabled"] is True
    stored = ApprovalPolicy.objects.get(pk=policy["id"])
    assert stored.project_id == api.project.id
    assert stored.created_by_id == api.user.id

    listed = api.get(api.url("approval_policies/")).json()["results"]
    assert [item["id"] for item in listed] == [policy["id"]]

    second_approver = member_client(api.project).user
    updated = api.patch(
        api.url(f"approval_policies/{policy['id']}/"),
        {"approver_config": {"quorum": 2, "users": [api.user.id, second_approver.id]}},
        format="json",
    )
    assert updated.status_code == 200
    assert ApprovalPolicy.objects.get(pk=policy["id"]).quorum == 2

    assert api.delete(api.url(f"approval_policies/{policy['id']}/")).status_code == 204
    assert not ApprovalPolicy.objects.exists()


def test_filters(api):
    make_policy(api.project, "feature_flag.enable", approvers=[api.user])
    disabled = make_policy(api.project, "feature_flag.disable", approvers=[api.user])
    disabled.enabled = False
    disabled.save()
    assert [
        p["action_key"]
        for p in api.get(api.url("approval_policies/?action_key=feature_flag.enable")).json()["results"]
    ] == ["feature_flag.enable"]
    assert [
        p["action_key"] for p in api.get(api.url("approval_policies/?enabled=true")).json()["results"]
    ] == ["feature_flag.enable"]


def test_duplicate_policy_is_refused(api):
    api.post(api.url("approval_policies/"), body([api.user.id]), format="json")
    response = api.post(api.url("approval_policies/"), body([api.user.id]), format="json")
    assert response.status_code == 400
    assert "already exists" in response.json()["detail"]


@pytest.mark.parametrize("quorum", [0, -1, "two"])
def test_quorum_must_be_at_least_one(api, quorum):
    response = api.post(
        api.url("approval_policies/"),
        {"action_key": "feature_flag.enable", "approver_config": {"quorum": quorum, "users": []}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "Quorum must be at least 1"


@pytest.mark.parametrize("users", [[], ["me"], ["me", "me"]])
def test_quorum_larger_than_the_possible_approvers_is_refused(api, users):
    user_ids = [api.user.id for _ in users]
    response = api.post(
        api.url("approval_policies/"),
        {"action_key": "feature_flag.enable", "approver_config": {"quorum": 2, "users": user_ids}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["detail"] == QUORUM_EXCEEDS_APPROVERS.format(approvers=len(set(user_ids)))
    assert not ApprovalPolicy.objects.exists()


def test_quorum_larger_than_the_approvers_is_refused_on_update(api):
    policy = api.post(api.url("approval_policies/"), body([api.user.id]), format="json").json()
    response = api.patch(
        api.url(f"approval_policies/{policy['id']}/"),
        {"approver_config": {"quorum": 2, "users": [api.user.id]}},
        format="json",
    )
    assert response.status_code == 400
    assert ApprovalPolicy.objects.get(pk=policy["id"]).quorum == 1


def test_bypass_levels_are_coerced_to_integers(api):
    response = api.post(
        api.url("approval_policies/"),
        body([api.user.id], bypass_org_membership_levels=["8", "15"]),
        format="json",
    )
    assert response.status_code == 201
    assert ApprovalPolicy.objects.get().bypass_org_membership_levels == [8, 15]
    bad = api.post(
        api.url("approval_policies/"),
        {
            **body([api.user.id], bypass_org_membership_levels=["admin", "owner"]),
            "action_key": "feature_flag.disable",
        },
        format="json",
    )
    assert bad.status_code == 400


def test_unknown_roles_and_action_keys_and_strangers_are_refused(api, other_project):
    roles = api.post(
        api.url("approval_policies/"),
        body([api.user.id], bypass_roles=["00000000-0000-0000-0000-000000000001"]),
        format="json",
    )
    assert roles.status_code == 400
    assert "do not exist" in roles.json()["detail"]
    unknown = api.post(
        api.url("approval_policies/"), {**body([api.user.id]), "action_key": "survey.launch"}, format="json"
    )
    assert unknown.status_code == 400
    stranger = UserFactory()
    strangers = api.post(api.url("approval_policies/"), body([stranger.id]), format="json")
    assert strangers.status_code == 400
    assert "must be members" in strangers.json()["detail"]


def test_members_read_but_only_admins_write(api):
    member = member_client(api.project)
    make_policy(api.project, "feature_flag.enable", approvers=[api.user])
    assert member.get(api.url("approval_policies/")).status_code == 200
    response = member.post(
        api.url("approval_policies/"),
        {**body([api.user.id]), "action_key": "feature_flag.disable"},
        format="json",
    )
    assert response.status_code == 403
    admin = member_client(api.project, level=OrganizationMembership.Level.ADMIN)
    assert (
        admin.post(
            api.url("approval_policies/"),
            {**body([api.user.id]), "action_key": "feature_flag.disable"},
            format="json",
        ).status_code
        == 201
    )


def test_approvals_scope(make_api, project, user):
    assert (
        make_api(scopes=["approvals:read"]).get(f"/api/projects/{project.id}/approval_policies/").status_code
        == 200
    )
    assert make_api(scopes=["experiment:read"]).get(f"/api/projects/{project.id}/change_requests/").json()[
        "detail"
    ] == ("API key missing required scope 'approvals:read'")


def test_admin_approve_action_goes_through_the_service(api):
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    OrganizationMembership.objects.create(organization=api.project.organization, user=admin_user, level=8)
    make_policy(api.project, "experiment.launch", approvers=[admin_user])
    draft = ExperimentFactory(project=api.project)
    change_request_id = api.post(api.url(f"experiments/{draft.id}/launch/")).json()["change_request_id"]
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        "/admin/approvals/changerequest/",
        {"action": "approve", "_selected_action": [change_request_id]},
        follow=True,
    )
    messages = [str(message) for message in get_messages(response.wsgi_request)]
    assert any("Change applied successfully" in message for message in messages), messages
    assert ChangeRequest.objects.get(pk=change_request_id).state == "applied"
    assert Experiment.objects.get(pk=draft.pk).start_date is not None
    assert client.get("/admin/approvals/approvalpolicy/").status_code == 200


@pytest.mark.parametrize(
    ("approver_config", "message"),
    [
        ({"quorum": 3, "users": ["me", "me"]}, QUORUM_EXCEEDS_APPROVERS.format(approvers=1)),
        ({"quorum": 1, "users": ["not an id"]}, APPROVER_CONFIG_INVALID),
    ],
)
def test_admin_made_policies_are_validated_too(api, approver_config, message):
    users = [api.user.id if user == "me" else user for user in approver_config["users"]]
    policy = ApprovalPolicy(
        organization=api.project.organization,
        action_key="experiment.launch",
        approver_config={**approver_config, "users": users},
    )
    with pytest.raises(DjangoValidationError) as refused:
        policy.full_clean()
    assert refused.value.message_dict["approver_config"] == [message]

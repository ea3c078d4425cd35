"""A policy naming an action no installed app registers (made by hand in the admin or the shell, or
left behind by an app removed since) gates nothing: the gate ignores it and logs a warning once, the
admin marks it invalid and refuses to save one, and no write answers 500 because of it."""

import logging
import re

import pytest
from django.test import Client

from approvals import actions
from approvals.gate import UNKNOWN_ACTION_WARNING
from approvals.models import UNKNOWN_ACTION, ApprovalPolicy, ChangeRequest
from experiments.models import Experiment
from tests.approvals.helpers import make_policy, member_client
from tests.factories import ExperimentFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def approver(api):
    return member_client(api.project)


@pytest.fixture
def without_experiment_actions(monkeypatch):
    """The experiments app's approval actions unregistered, as if the app that registered them had
    been removed while policies naming them stayed in the database."""
    remaining = {
        key: action
        for key, action in actions._registered_actions.items()
        if not key.startswith("experiment.")
    }
    monkeypatch.setattr(actions, "_registered_actions", remaining)


@pytest.fixture
def admin_client(api) -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def unknown_action_warnings(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.msg == UNKNOWN_ACTION_WARNING]


def test_a_policy_whose_action_is_no_longer_registered_gates_nothing_and_is_logged_once(
    api, approver, without_experiment_actions, caplog
):
    policy = make_policy(api.project, "experiment.launch", approvers=[approver.user])
    drafts = [ExperimentFactory(project=api.project) for _ in range(2)]

    with caplog.at_level(logging.WARNING, logger="approvals.gate"):
        responses = [api.post(api.url(f"experiments/{draft.id}/launch/")) for draft in drafts]

    assert [response.status_code for response in responses] == [200, 200], responses[0].content
    assert [response.json()["status"] for response in responses] == ["running", "running"]
    assert all(Experiment.objects.get(pk=draft.pk).start_date is not None for draft in drafts)
    assert not ChangeRequest.objects.exists()
    warnings = unknown_action_warnings(caplog)
    assert [record.args for record in warnings] == [(policy.pk, "experiment.launch")]


def test_a_hand_made_policy_for_an_unknown_action_neither_gates_nor_conflicts(api, approver):
    make_policy(api.project, "feature_flag.enable", approvers=[approver.user])
    make_policy(api.project, "survey.launch", approvers=[approver.user], organization_wide=True)
    make_policy(api.project, "experiment.unknown", approvers=[approver.user])
    draft = ExperimentFactory(project=api.project)

    response = api.post(api.url(f"experiments/{draft.id}/launch/"))

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "approval_required"
    assert ChangeRequest.objects.get().action_key == "feature_flag.enable"
    assert Experiment.objects.get(pk=draft.pk).start_date is None
    listed = api.get(api.url("approval_policies/"))
    assert listed.status_code == 200
    assert sorted(item["action_key"] for item in listed.json()["results"]) == [
        "experiment.unknown",
        "feature_flag.enable",
        "survey.launch",
    ]


def test_a_policy_for_an_unknown_action_is_still_edited_and_deleted_over_the_api(api, approver):
    policy = make_policy(api.project, "survey.launch", approvers=[approver.user])
    url = api.url(f"approval_policies/{policy.id}/")

    renamed = api.patch(url, {"action_key": "experiment.launch"}, format="json")
    assert renamed.status_code == 200, renamed.content
    assert ApprovalPolicy.objects.get(pk=policy.pk).action_key == "experiment.launch"
    assert api.delete(url).status_code == 204
    assert not ApprovalPolicy.objects.exists()


def test_the_admin_marks_policies_for_unknown_actions_invalid(api, approver, admin_client):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    unknown = make_policy(api.project, "survey.launch", approvers=[approver.user])

    listing = admin_client.get("/admin/approvals/approvalpolicy/")
    assert listing.status_code == 200
    marks = dict(
        re.findall(
            r'field-action_key"><a [^>]*>([^<]+)</a></th><td class="field-action_valid"><img src="[^"]*icon-(yes|no)',
            listing.content.decode(),
        )
    )
    assert marks == {"experiment.launch": "yes", "survey.launch": "no"}
    change_form = admin_client.get(f"/admin/approvals/approvalpolicy/{unknown.pk}/change/")
    assert change_form.status_code == 200
    assert "icon-no.svg" in change_form.content.decode()


def admin_form(api, approver, action_key: str) -> dict:
    return {
        "organization": api.project.organization_id,
        "project": api.project.id,
        "action_key": action_key,
        "conditions": "{}",
        "approver_config": f'{{"quorum": 1, "users": [{approver.user.id}]}}',
        "bypass_org_membership_levels": "[]",
        "expires_after": "14 00:00:00",
        "enabled": "on",
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
    }


def test_the_admin_refuses_to_save_a_policy_for_an_unknown_action(api, approver, admin_client):
    response = admin_client.post(
        "/admin/approvals/approvalpolicy/add/", admin_form(api, approver, "survey.launch")
    )

    assert response.status_code == 200
    assert not ApprovalPolicy.objects.exists()
    errors = response.context["adminform"].form.errors
    assert errors["action_key"] == [
        UNKNOWN_ACTION.format(action_key="survey.launch", known=", ".join(actions.gated_action_keys()))
    ]

    saved = admin_client.post(
        "/admin/approvals/approvalpolicy/add/", admin_form(api, approver, "experiment.launch")
    )
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    assert ApprovalPolicy.objects.get().action_key == "experiment.launch"

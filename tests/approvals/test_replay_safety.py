"""Applying an approved change request: the recorded call is plain JSON, replayed without decoding
the requester's values; any failure ends `failed` with the reason, never a 500, never stuck. A
request that can never be applied (recorded in an older format, or naming a service gone since) is
failed on its first approval with a 400, and by `validate_change_requests`."""

from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import OrganizationMembership
from approvals.gate import NO_GATED_SERVICE, NOT_CURRENT_FORMAT
from approvals.models import ChangeRequest
from approvals.services import (
    APPLY_FAILED_UNEXPECTEDLY,
    NEVER_APPLICABLE,
    ONLY_PENDING,
    REQUESTER_NOT_A_MEMBER,
)
from approvals.views import NEVER_APPLICABLE_CODE
from experiments.models import Experiment
from tests.approvals.helpers import make_policy, member_client, world_state
from tests.factories import ExperimentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def approver(api):
    return member_client(api.project)


@pytest.fixture
def draft(api):
    return ExperimentFactory(project=api.project)


def request_update(api, experiment, body) -> str:
    response = api.patch(api.url(f"experiments/{experiment.id}/"), body, format="json")
    assert response.status_code == 409, response.content
    return response.json()["change_request_id"]


def approve(approver, api, change_request_id):
    response = approver.post(api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def hostile_values(other_project_experiment) -> dict:
    return {
        "when": {"$datetime": "2020-01-01T00:00:00+00:00"},
        "day": {"$date": "2020-01-01"},
        "row": {"$model": "experiments.Experiment", "pk": other_project_experiment.pk},
        "user": {"$model": "accounts.User", "pk": 1},
    }


def test_hostile_values_in_the_body_are_replayed_as_the_plain_json_they_are(
    api, approver, draft, other_project
):
    make_policy(api.project, "experiment.update", approvers=[approver.user])
    values = hostile_values(ExperimentFactory(project=other_project))
    change_request_id = request_update(
        api,
        draft,
        {"description": "reviewed", "metrics": [], "stats_config": None, "exposure_criteria": values},
    )
    stored = ChangeRequest.objects.get(pk=change_request_id).intent["arguments"]["data"]["exposure_criteria"]
    assert stored == values

    outcome = approve(approver, api, change_request_id)

    assert outcome["status"] == "applied", outcome
    experiment = Experiment.objects.get(pk=draft.pk)
    assert experiment.description == "reviewed"
    assert experiment.exposure_criteria == values


def test_model_ids_are_loaded_only_from_the_request_project(api, approver, draft, other_project):
    """A recording pointing at another tenant's row (however it got there) loads nothing."""
    make_policy(api.project, "experiment.update", approvers=[approver.user])
    change_request_id = request_update(api, draft, {"description": "reviewed"})
    foreign = ExperimentFactory(project=other_project, description="theirs")
    change_request = ChangeRequest.objects.get(pk=change_request_id)
    change_request.intent["arguments"]["experiment"] = foreign.pk
    change_request.save(update_fields=["intent"])

    outcome = approve(approver, api, change_request_id)

    assert outcome["status"] == "failed"
    change_request.refresh_from_db()
    assert change_request.state == ChangeRequest.State.FAILED
    assert change_request.apply_error == "Resource no longer exists"
    assert Experiment.objects.get(pk=foreign.pk).description == "theirs"
    assert Experiment.objects.get(pk=draft.pk).description != "reviewed"


def record_in_the_old_tagged_format(change_request_id: str) -> ChangeRequest:
    """Rewrite a stored request as requests were recorded before the current format: models and
    datetimes tagged in place (`{"$model": …, "pk": …}`), no list of typed places."""
    change_request = ChangeRequest.objects.get(pk=change_request_id)
    arguments = change_request.intent["arguments"]
    arguments["experiment"] = {"$model": "experiments.Experiment", "pk": arguments["experiment"]}
    del change_request.intent["argument_types"]
    change_request.save(update_fields=["intent"])
    return change_request


def never_applicable_body(reason: str) -> dict:
    return {
        "type": "invalid_request",
        "code": NEVER_APPLICABLE_CODE,
        "detail": NEVER_APPLICABLE.format(reason=reason),
        "attr": None,
    }


def test_a_recording_in_the_old_tagged_format_is_failed_with_a_clear_400_instead_of_decoding(
    api, approver, draft
):
    make_policy(api.project, "experiment.update", approvers=[approver.user])
    change_request = record_in_the_old_tagged_format(request_update(api, draft, {"description": "reviewed"}))
    before = world_state()
    url = api.url(f"change_requests/{change_request.id}/approve/")

    response = approver.post(url, {"reason": "fine"}, format="json")

    assert response.status_code == 400, response.content
    assert response.json() == never_applicable_body(NOT_CURRENT_FORMAT)
    change_request.refresh_from_db()
    assert (change_request.state, change_request.apply_error) == ("failed", NOT_CURRENT_FORMAT)
    assert (change_request.validation_status, change_request.validation_errors) == (
        "invalid",
        {"recording": NOT_CURRENT_FORMAT},
    )
    assert not change_request.approvals.exists()
    assert world_state() == before
    again = approver.post(url, {}, format="json")
    assert again.status_code == 403, again.content
    assert again.json()["detail"] == ONLY_PENDING
    shown = api.get(api.url(f"change_requests/{change_request.id}/")).json()
    assert (shown["state"], shown["apply_error"]) == ("failed", NOT_CURRENT_FORMAT)


def test_an_old_recording_awaiting_a_quorum_is_failed_at_the_first_approval(api, draft):
    first, second = member_client(api.project), member_client(api.project)
    make_policy(api.project, "experiment.update", approvers=[first.user, second.user], quorum=2)
    change_request = record_in_the_old_tagged_format(request_update(api, draft, {"description": "reviewed"}))

    response = first.post(api.url(f"change_requests/{change_request.id}/approve/"), {}, format="json")

    assert response.status_code == 400, response.content
    assert response.json() == never_applicable_body(NOT_CURRENT_FORMAT)
    change_request.refresh_from_db()
    assert change_request.state == ChangeRequest.State.FAILED
    assert not change_request.approvals.exists()
    later = second.post(api.url(f"change_requests/{change_request.id}/approve/"), {}, format="json")
    assert later.status_code == 403


def test_a_recording_naming_a_service_this_server_no_longer_has_is_failed(api, approver, draft):
    make_policy(api.project, "experiment.update", approvers=[approver.user])
    change_request = ChangeRequest.objects.get(pk=request_update(api, draft, {"description": "reviewed"}))
    change_request.intent["service"] = "experiments.a_service_since_removed"
    change_request.save(update_fields=["intent"])

    response = approver.post(api.url(f"change_requests/{change_request.id}/approve/"), {}, format="json")

    assert response.status_code == 400, response.content
    assert response.json() == never_applicable_body(NO_GATED_SERVICE)
    change_request.refresh_from_db()
    assert (change_request.state, change_request.apply_error) == ("failed", NO_GATED_SERVICE)
    assert Experiment.objects.get(pk=draft.pk).description != "reviewed"


def test_an_old_recording_can_still_be_rejected(api, approver, draft):
    make_policy(api.project, "experiment.update", approvers=[approver.user])
    change_request = record_in_the_old_tagged_format(request_update(api, draft, {"description": "reviewed"}))

    response = approver.post(
        api.url(f"change_requests/{change_request.id}/reject/"), {"reason": "stale format"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "rejected"
    assert ChangeRequest.objects.get(pk=change_request.id).state == ChangeRequest.State.REJECTED


def test_the_validate_command_fails_pending_requests_that_can_never_be_applied(api, approver):
    make_policy(api.project, "experiment.update", approvers=[approver.user])
    old = record_in_the_old_tagged_format(
        request_update(api, ExperimentFactory(project=api.project), {"description": "old"})
    )
    current_id = request_update(api, ExperimentFactory(project=api.project), {"description": "current"})
    output = StringIO()

    call_command("validate_change_requests", stdout=output)
    call_command("validate_change_requests", stdout=output)

    assert output.getvalue().splitlines() == [
        "Checked 1 change request(s); 0 marked stale; 1 failed (can never be applied).",
        "Checked 1 change request(s); 0 marked stale; 0 failed (can never be applied).",
    ]
    old.refresh_from_db()
    assert (old.state, old.apply_error, old.validation_status) == ("failed", NOT_CURRENT_FORMAT, "invalid")
    current = ChangeRequest.objects.get(pk=current_id)
    assert (current.state, current.validation_status) == ("pending", "valid")
    assert approve(approver, api, current_id)["status"] == "applied"


def test_any_error_while_applying_ends_failed_with_the_reason(api, approver, draft, monkeypatch):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    response = api.post(api.url(f"experiments/{draft.id}/launch/"))
    change_request_id = response.json()["change_request_id"]

    def broken_replay(change_request, *, user):
        raise RuntimeError("simulated failure while applying")

    monkeypatch.setattr("approvals.services.replay", broken_replay)
    outcome = approve(approver, api, change_request_id)

    assert outcome["status"] == "failed"
    change_request = ChangeRequest.objects.get(pk=change_request_id)
    assert change_request.state == ChangeRequest.State.FAILED
    assert change_request.apply_error == APPLY_FAILED_UNEXPECTEDLY.format(error_type="RuntimeError")
    assert Experiment.objects.get(pk=draft.pk).start_date is None
    again = approver.post(api.url(f"change_requests/{change_request_id}/approve/"), {}, format="json")
    assert again.status_code == 403, again.content
    assert again.json()["detail"] == ONLY_PENDING
    assert ChangeRequest.objects.get(pk=change_request_id).state == ChangeRequest.State.FAILED


def test_a_requester_who_left_the_organization_is_not_applied(api, approver, draft):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    requester = member_client(api.project)
    response = requester.post(api.url(f"experiments/{draft.id}/launch/"))
    change_request_id = response.json()["change_request_id"]
    OrganizationMembership.objects.filter(user=requester.user).delete()

    outcome = approve(approver, api, change_request_id)

    assert outcome["status"] == "failed"
    change_request = ChangeRequest.objects.get(pk=change_request_id)
    assert change_request.state == ChangeRequest.State.FAILED
    assert change_request.apply_error == REQUESTER_NOT_A_MEMBER
    assert Experiment.objects.get(pk=draft.pk).start_date is None


def test_a_requester_who_moved_to_another_organization_is_not_applied(api, approver, draft, other_project):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    requester = member_client(api.project)
    change_request_id = requester.post(api.url(f"experiments/{draft.id}/launch/")).json()["change_request_id"]
    OrganizationMembership.objects.filter(user=requester.user).update(organization=other_project.organization)

    assert approve(approver, api, change_request_id)["status"] == "failed"
    assert Experiment.objects.get(pk=draft.pk).start_date is None

"""The approver rule lives in the change request services, so no caller (API, admin, a script) can
vote around it: these tests call the services directly."""

import pytest

from approvals.models import Approval, ChangeRequest
from approvals.services import (
    CANNOT_APPROVE,
    NOT_AN_APPROVER,
    ONLY_PENDING,
    OWN_REQUEST,
    ChangeRequestActionError,
    VoteRefused,
    change_request_approve,
    change_request_reject,
)
from experiments.models import Experiment
from tests.approvals.helpers import make_policy, member_client
from tests.factories import ExperimentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def approver(api):
    return member_client(api.project)


@pytest.fixture
def change_request(api, approver):
    make_policy(api.project, "experiment.launch", approvers=[approver.user])
    experiment = ExperimentFactory(project=api.project)
    response = api.post(api.url(f"experiments/{experiment.id}/launch/"))
    assert response.status_code == 409, response.content
    return ChangeRequest.objects.get(pk=response.json()["change_request_id"])


def launched(change_request: ChangeRequest) -> bool:
    return Experiment.objects.get(pk=change_request.resource_id).start_date is not None


@pytest.mark.parametrize("vote", [change_request_approve, change_request_reject])
def test_someone_outside_the_approvers_cannot_vote(api, change_request, vote):
    outsider = member_client(api.project).user
    with pytest.raises(VoteRefused, match=NOT_AN_APPROVER):
        vote(change_request=change_request, user=outsider, reason="looks fine")
    change_request.refresh_from_db()
    assert change_request.state == ChangeRequest.State.PENDING
    assert not Approval.objects.filter(change_request=change_request).exists()
    assert not launched(change_request)


def test_the_requester_cannot_approve_their_own_request(api, change_request):
    with pytest.raises(VoteRefused, match=OWN_REQUEST):
        change_request_approve(change_request=change_request, user=api.user)
    change_request.refresh_from_db()
    assert change_request.state == ChangeRequest.State.PENDING
    assert not launched(change_request)


def test_the_requester_approves_when_the_policy_allowed_self_approval(api, change_request):
    change_request.policy_snapshot = {**change_request.policy_snapshot, "users": [api.user.id]}
    change_request.policy_snapshot["allow_self_approve"] = True
    change_request.save(update_fields=["policy_snapshot"])

    outcome = change_request_approve(change_request=change_request, user=api.user)

    assert outcome.status == "applied"
    assert launched(change_request)


def test_an_approver_approves_and_the_change_is_applied(change_request, approver):
    outcome = change_request_approve(change_request=change_request, user=approver.user)

    assert outcome.status == "applied"
    assert launched(change_request)


def test_a_request_that_is_not_pending_cannot_be_approved_by_anyone(api, change_request, approver):
    change_request_reject(change_request=change_request, user=approver.user, reason="not now")
    rejected = ChangeRequest.objects.get(pk=change_request.pk)
    outsider = member_client(api.project).user
    for user in (approver.user, outsider):
        with pytest.raises(VoteRefused, match=ONLY_PENDING):
            change_request_approve(change_request=rejected, user=user)
    assert not launched(change_request)


def test_a_request_decided_after_it_was_read_is_refused_once_locked(api, change_request, approver):
    read_before = ChangeRequest.objects.get(pk=change_request.pk)
    ChangeRequest.objects.filter(pk=change_request.pk).update(state=ChangeRequest.State.REJECTED)
    with pytest.raises(ChangeRequestActionError, match=CANNOT_APPROVE) as refused:
        change_request_approve(change_request=read_before, user=approver.user)
    assert not isinstance(refused.value, VoteRefused)
    assert not Approval.objects.filter(change_request=change_request).exists()

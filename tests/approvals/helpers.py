"""Helpers for approval tests: policies, extra organization members with keys, snapshots of state."""

from datetime import timedelta

from accounts.models import OrganizationMembership, Project, User
from activity.models import ActivityLog
from approvals.models import ApprovalPolicy, ChangeRequest
from experiments.models import Experiment
from flags.models import FeatureFlag
from holdouts.models import ExperimentHoldout
from tests.conftest import KeyedClient, keyed_client
from tests.factories import MembershipFactory, UserFactory


def make_policy(
    project: Project,
    action_key: str,
    *,
    approvers: list[User],
    quorum: int = 1,
    conditions: dict | None = None,
    allow_self_approve: bool = False,
    bypass_levels: list | None = None,
    organization_wide: bool = False,
    expires_after: timedelta = timedelta(days=14),
) -> ApprovalPolicy:
    return ApprovalPolicy.objects.create(
        organization=project.organization,
        project=None if organization_wide else project,
        action_key=action_key,
        conditions=conditions or {},
        approver_config={"quorum": quorum, "users": [user.id for user in approvers]},
        allow_self_approve=allow_self_approve,
        bypass_org_membership_levels=bypass_levels or [],
        expires_after=expires_after,
    )


def member_client(project: Project, level: int = OrganizationMembership.Level.MEMBER) -> KeyedClient:
    user = UserFactory(current_project=project)
    MembershipFactory(organization=project.organization, user=user, level=level)
    return keyed_client(user, project)


def world_state() -> tuple:
    """Everything a gated write could change, to prove a blocked one changed nothing."""
    return (
        sorted(
            Experiment.objects.values_list(
                "id", "start_date", "end_date", "archived", "deleted", "name", "conclusion"
            )
        ),
        sorted(FeatureFlag.objects.values_list("id", "active", "version", "filters", "deleted")),
        sorted(ExperimentHoldout.objects.values_list("id", "filters", "name")),
        ActivityLog.objects.count(),
    )


def pending_requests() -> list[ChangeRequest]:
    return list(ChangeRequest.objects.filter(state=ChangeRequest.State.PENDING))

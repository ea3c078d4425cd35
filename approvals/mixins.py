"""Renders the approval gate's outcomes for the ViewSets whose writes it gates."""

from typing import Any

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import PersonalAPIKey
from accounts.scopes import scopes_grant
from approvals.gate import POLICY_CONFLICT_GUIDANCE, ApprovalRequired, PolicyConflict
from approvals.serializers import ChangeRequestSerializer


def can_read_change_requests(request: Request) -> bool:
    key = request.auth
    return not isinstance(key, PersonalAPIKey) or scopes_grant(key.effective_scopes, "approvals:read")


def approval_required_body(error: ApprovalRequired, request: Request) -> dict[str, Any]:
    change_request = error.change_request
    serialized = ChangeRequestSerializer(change_request, context={"request": request}).data
    common = {
        "resource_type": change_request.resource_type,
        "resource_id": change_request.resource_id,
        "change_request_id": str(change_request.id),
    }
    if error.duplicate:
        return {
            "code": "change_request_pending",
            "error": error.message,
            **common,
            "existing_change_request": serialized,
        }
    body: dict[str, Any] = {
        "code": "approval_required",
        "status": "approval_required",
        "message": error.message,
        "detail": error.message,
        **common,
    }
    if can_read_change_requests(request):
        snapshot = change_request.policy_snapshot
        body["change_request"] = serialized
        body["required_approvers"] = {
            "quorum": snapshot.get("quorum"),
            "users": snapshot.get("users"),
            "roles": [],
        }
    return body


def policy_conflict_body(error: PolicyConflict) -> dict[str, Any]:
    return {
        "code": "policy_conflict",
        "error": str(error),
        "conflicting_policies": [
            {"id": str(policy.pk), "name": policy.action_key, "action_key": policy.action_key}
            for policy in error.policies
        ],
        "guidance": POLICY_CONFLICT_GUIDANCE,
    }


class ApprovalHandlingMixin:
    """Turns `ApprovalRequired` into 409 and `PolicyConflict` into 400 with PostHog's bodies."""

    request: Request

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ApprovalRequired):
            return Response(approval_required_body(exc, self.request), status=status.HTTP_409_CONFLICT)
        if isinstance(exc, PolicyConflict):
            return Response(policy_conflict_body(exc), status=status.HTTP_400_BAD_REQUEST)
        return super().handle_exception(exc)

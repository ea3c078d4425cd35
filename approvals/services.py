"""Acting on change requests: approve, reject, cancel, apply, expire, check staleness.

Each function locks the change request row and re-reads its state under the lock, so two
approvers acting at once cannot both apply it. An expired request is marked expired when someone
acts on it, and can then no longer be approved.
"""

import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.models import OrganizationMembership, User
from approvals.actions import gated_action
from approvals.gate import (
    RESOURCE_GONE,
    ApplyBlocked,
    ApprovalRequired,
    PolicyConflict,
    ReplayError,
    recording_problem,
    replay,
    stale_reason,
)
from approvals.models import Approval, ChangeRequest

ONLY_PENDING = "Only pending change requests can be approved"
CANNOT_APPROVE = "This change request can no longer be approved."
OWN_REQUEST = "You cannot approve your own change request"
NOT_AN_APPROVER = "You are not in the approver set for this change request"
CANNOT_REJECT = "This change request can no longer be rejected."
CANNOT_CANCEL = "This change request can no longer be canceled."
ALREADY_VOTED = "You have already voted on this change request."
REASON_REQUIRED = "A reason is required for rejection."
DEFAULT_CANCEL_REASON = "Canceled by requester"
REQUESTER_NOT_A_MEMBER = "The requester is no longer a member of this organization."
APPLY_FAILED_UNEXPECTEDLY = "The change could not be applied ({error_type}); see the server's error log."
NEVER_APPLICABLE = (
    "This change request can never be applied, so it is now failed: {reason}. "
    "Make the change again to request a new approval."
)

logger = logging.getLogger(__name__)


class ChangeRequestActionError(Exception):
    """A refused approve/reject/cancel; rendered as PostHog's `{"error": ...}` 400 body."""


class VoteRefused(ChangeRequestActionError):
    """PostHog's approver rule refuses the vote (the request is not pending, it is the user's own,
    or the user is not an approver); the API answers 403."""


class NeverApplicable(ChangeRequestActionError):
    """The request's recorded call can never be replayed, so approving it could only end in
    failure: it has been failed instead, no vote recorded. The API answers 400 in its error format."""


@dataclass
class Outcome:
    status: str
    message: str
    change_request: ChangeRequest
    result: dict[str, Any] | None = None


def approver_refusal(change_request: ChangeRequest, user_id: int | None) -> str | None:
    """Why this user may not vote on the request, or None when they may: they must be in the
    approvers of the policy as it was when the request was made, and not its requester unless
    that policy allowed self-approval. The request's state is not part of this rule."""
    snapshot = change_request.policy_snapshot or {}
    if (
        user_id is not None
        and change_request.created_by_id == user_id
        and not snapshot.get("allow_self_approve")
    ):
        return OWN_REQUEST
    if user_id is None or user_id not in [int(item) for item in snapshot.get("users") or []]:
        return NOT_AN_APPROVER
    return None


def lock(change_request: ChangeRequest) -> ChangeRequest:
    return ChangeRequest.objects.select_for_update().get(pk=change_request.pk)


def expire_if_due(change_request: ChangeRequest) -> bool:
    """Mark an open request whose time is up as expired, in its own transaction, so that the
    refusal that follows does not undo it."""
    with transaction.atomic():
        locked = lock(change_request)
        if locked.state in ChangeRequest.OPEN_STATES and locked.expires_at <= timezone.now():
            locked.state = ChangeRequest.State.EXPIRED
            locked.validation_status = ChangeRequest.ValidationStatus.EXPIRED
            locked.save(update_fields=["state", "validation_status", "updated_at"])
            return True
    return False


def fail_if_never_applicable(change_request: ChangeRequest) -> str | None:
    """Fail an open request whose recorded call can never be replayed (`recording_problem`: a
    request recorded before the current format, or naming a service this server no longer has),
    in its own transaction so that a refusal that follows does not undo it: state `failed` with the
    reason in `apply_error`, validation status `invalid`. Returns the reason when it failed the
    request; a request no longer open is left to the caller's state check."""
    problem = recording_problem(change_request.intent)
    if problem is None:
        return None
    with transaction.atomic():
        locked = lock(change_request)
        if locked.state not in ChangeRequest.OPEN_STATES:
            return None
        locked.state = ChangeRequest.State.FAILED
        locked.apply_error = problem
        locked.validation_status = ChangeRequest.ValidationStatus.INVALID
        locked.validation_errors = {"recording": problem}
        locked.validated_at = timezone.now()
        locked.save(
            update_fields=[
                "state",
                "apply_error",
                "validation_status",
                "validation_errors",
                "validated_at",
                "updated_at",
            ]
        )
    return problem


def change_request_apply(change_request: ChangeRequest) -> Outcome:
    """Carry out an approved request by replaying its call as the requester. Whatever stops it — the
    requester left the organization, the target changed since the request, input no longer valid,
    another policy's gate, an unreadable recording, any error at all — makes it `failed` with the
    reason in `apply_error`; nothing of the change is written and the request never stays approved."""
    if not requester_is_member(change_request):
        return fail(change_request, REQUESTER_NOT_A_MEMBER)
    try:
        with transaction.atomic():
            stale = stale_reason(change_request.intent.get("preconditions") or {})
            if stale:
                return fail(change_request, f"Precondition failed: {stale}")
            result = replay(change_request, user=change_request.created_by)
    except ValidationError as error:
        return fail(change_request, f"Validation failed: {error.detail}")
    except (ApplyBlocked, PolicyConflict, ApprovalRequired, ReplayError) as error:
        return fail(change_request, str(error))
    except ObjectDoesNotExist:
        return fail(change_request, RESOURCE_GONE)
    except Exception as error:
        logger.exception("Applying change request %s failed", change_request.pk)
        return fail(change_request, APPLY_FAILED_UNEXPECTEDLY.format(error_type=type(error).__name__))
    change_request.state = ChangeRequest.State.APPLIED
    change_request.applied_at = timezone.now()
    change_request.applied_by = change_request.created_by
    change_request.apply_error = ""
    change_request.result_data = {
        "resource_id": str(result.pk)
        if getattr(result, "pk", None) is not None
        else change_request.resource_id,
        "resource_version": getattr(result, "version", None),
    }
    change_request.save()
    return Outcome(
        "applied", "Quorum reached. Change applied successfully.", change_request, change_request.result_data
    )


def requester_is_member(change_request: ChangeRequest) -> bool:
    """The change is applied as its requester, so they must still belong to the organization."""
    return (
        change_request.created_by_id is not None
        and OrganizationMembership.objects.filter(
            user_id=change_request.created_by_id, organization_id=change_request.organization_id
        ).exists()
    )


def fail(change_request: ChangeRequest, reason: str) -> Outcome:
    change_request.state = ChangeRequest.State.FAILED
    change_request.apply_error = reason
    change_request.save(update_fields=["state", "apply_error", "updated_at"])
    return Outcome("failed", f"Quorum reached but application failed: {reason}", change_request)


def check_may_vote(change_request: ChangeRequest, user: User) -> None:
    """Raise `VoteRefused` unless the approver rule lets `user` vote on the request as it was read.
    PostHog checks this before acting, so a request found no longer pending only after expiring
    it or locking it (a lost race) is the 400 of the action instead."""
    if change_request.state != ChangeRequest.State.PENDING:
        raise VoteRefused(ONLY_PENDING)
    refusal = approver_refusal(change_request, user.id)
    if refusal is not None:
        raise VoteRefused(refusal)


def lock_pending(change_request: ChangeRequest, refusal: str) -> ChangeRequest:
    """Lock the request and re-read its state: raise `refusal` unless it is still pending."""
    locked = lock(change_request)
    if locked.state != ChangeRequest.State.PENDING:
        raise ChangeRequestActionError(refusal)
    return locked


def record_vote(change_request: ChangeRequest, user: User, decision: str, reason: str) -> None:
    """Store `user`'s vote; each approver votes once."""
    _, created = Approval.objects.get_or_create(
        change_request=change_request, created_by=user, defaults={"decision": decision, "reason": reason}
    )
    if not created:
        raise ChangeRequestActionError(ALREADY_VOTED)


def change_request_approve(*, change_request: ChangeRequest, user: User, reason: str = "") -> Outcome:
    """Record an approval by one of the request's approvers; when the quorum is reached the change
    is applied at once. Raises if the request is not pending or `user` may not vote on it, and
    fails a request that can never be applied instead of recording the vote (`NeverApplicable`)."""
    check_may_vote(change_request, user)
    expire_if_due(change_request)
    problem = fail_if_never_applicable(change_request)
    if problem is not None:
        raise NeverApplicable(NEVER_APPLICABLE.format(reason=problem))
    with transaction.atomic():
        change_request = lock_pending(change_request, CANNOT_APPROVE)
        record_vote(change_request, user, Approval.Decision.APPROVED, reason or "")
        approvals = change_request.approvals.filter(decision=Approval.Decision.APPROVED).count()
        quorum = int(change_request.policy_snapshot.get("quorum") or 1)
        if approvals < quorum:
            return Outcome(
                "approved", f"Approval recorded. {approvals}/{quorum} approvals received.", change_request
            )
        change_request.state = ChangeRequest.State.APPROVED
        change_request.save(update_fields=["state", "updated_at"])
        return change_request_apply(change_request)


def change_request_reject(*, change_request: ChangeRequest, user: User, reason: str) -> Outcome:
    """One rejection by one of the request's approvers rejects the request, whatever the quorum.
    Raises if the request is not pending, `user` may not vote on it or no reason is given."""
    check_may_vote(change_request, user)
    expire_if_due(change_request)
    with transaction.atomic():
        change_request = lock_pending(change_request, CANNOT_REJECT)
        if not (reason or "").strip():
            raise ChangeRequestActionError(REASON_REQUIRED)
        record_vote(change_request, user, Approval.Decision.REJECTED, reason)
        change_request.state = ChangeRequest.State.REJECTED
        change_request.save(update_fields=["state", "updated_at"])
    return Outcome("rejected", "Change request rejected.", change_request)


def change_request_cancel(*, change_request: ChangeRequest, user: User, reason: str | None = None) -> Outcome:
    """The requester withdraws the request (it becomes `rejected`, with their reason recorded)."""
    expire_if_due(change_request)
    with transaction.atomic():
        change_request = lock(change_request)
        if not change_request.can_be_canceled_by(user.id):
            raise ChangeRequestActionError(CANNOT_CANCEL)
        Approval.objects.update_or_create(
            change_request=change_request,
            created_by=user,
            defaults={"decision": Approval.Decision.REJECTED, "reason": reason or DEFAULT_CANCEL_REASON},
        )
        change_request.state = ChangeRequest.State.REJECTED
        change_request.save(update_fields=["state", "updated_at"])
    return Outcome("canceled", "Change request canceled.", change_request)


def change_requests_expire() -> int:
    """Expire every open request whose time is up. Idempotent; returns how many were expired."""
    expired = 0
    due = ChangeRequest.objects.filter(state__in=ChangeRequest.OPEN_STATES, expires_at__lte=timezone.now())
    for change_request in due.only("id"):
        if expire_if_due(change_request):
            expired += 1
    return expired


@dataclass
class ValidationCounts:
    checked: int = 0
    stale: int = 0
    failed: int = 0


def change_requests_validate() -> ValidationCounts:
    """Fail pending requests that can never be applied (as approving one would), and mark those
    whose target changed since they were made as stale (their requester may then cancel them even
    after approvals). Returns how many were checked for staleness, marked stale and failed."""
    counts = ValidationCounts()
    for change_request in ChangeRequest.objects.filter(state=ChangeRequest.State.PENDING):
        if fail_if_never_applicable(change_request) is not None:
            counts.failed += 1
            continue
        already_stale = change_request.validation_status == ChangeRequest.ValidationStatus.STALE
        if already_stale or gated_action(change_request.action_key) is None:
            continue
        counts.checked += 1
        reason = stale_reason(change_request.intent.get("preconditions") or {})
        if reason:
            counts.stale += 1
            change_request.validation_status = ChangeRequest.ValidationStatus.STALE
            change_request.validation_errors = {"staleness": reason}
            change_request.validated_at = timezone.now()
            change_request.save(
                update_fields=["validation_status", "validation_errors", "validated_at", "updated_at"]
            )
    return counts

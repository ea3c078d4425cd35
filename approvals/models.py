"""Approval policies, change requests and votes (PostHog's approvals model)."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.timezone import now

from approvals.actions import gated_action, gated_action_keys

DEFAULT_EXPIRES_AFTER = timedelta(days=14)
QUORUM_EXCEEDS_APPROVERS = "approver_config.quorum cannot exceed the number of approvers ({approvers}): the change could never be approved."
APPROVER_CONFIG_INVALID = "approver_config must be an object with a quorum and a list of user ids."
UNKNOWN_ACTION = "No installed app registers the action {action_key!r}, so a policy for it would gate nothing. Use one of: {known}."


class ApprovalPolicy(models.Model):
    """Which action needs approval, under which conditions, from whom, and who may skip it.

    `project` null means the policy applies to every project of the organization. `approver_config`
    is `{"quorum": int, "users": [user ids]}`. `conditions` narrows which changes are gated (empty:
    all of them)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, null=True, blank=True, related_name="approval_policies"
    )
    action_key = models.CharField(max_length=128)
    conditions = models.JSONField(default=dict, blank=True)
    approver_config = models.JSONField(default=dict)
    allow_self_approve = models.BooleanField(default=False)
    bypass_org_membership_levels = models.JSONField(default=list, blank=True)
    expires_after = models.DurationField(default=DEFAULT_EXPIRES_AFTER)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "approval policies"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "project", "action_key"],
                condition=models.Q(project__isnull=False),
                name="unique_policy_per_project_action",
            ),
            models.UniqueConstraint(
                fields=["organization", "action_key"],
                condition=models.Q(project__isnull=True),
                name="unique_policy_per_organization_action",
            ),
        ]

    def __str__(self) -> str:
        scope = f"project {self.project_id}" if self.project_id else "organization"
        return f"{self.action_key} ({scope})"

    @property
    def quorum(self) -> int:
        return int((self.approver_config or {}).get("quorum") or 1)

    @property
    def action_is_registered(self) -> bool:
        """Whether an installed app registers this policy's action; a policy whose action none
        does gates nothing (`approvals.gate.gating_policies` leaves it out)."""
        return gated_action(self.action_key) is not None

    def clean(self) -> None:
        """Refuse, for policies made in the admin as the API does, an action no installed app
        registers (the policy would gate nothing) and a quorum no set of approvers can reach (the
        gated action could never happen)."""
        errors = {}
        if not self.action_is_registered:
            errors["action_key"] = UNKNOWN_ACTION.format(
                action_key=self.action_key, known=", ".join(gated_action_keys())
            )
        try:
            quorum, approvers = self.quorum, len(set(self.approver_user_ids))
        except (AttributeError, TypeError, ValueError):
            errors["approver_config"] = APPROVER_CONFIG_INVALID
        else:
            if quorum > approvers:
                errors["approver_config"] = QUORUM_EXCEEDS_APPROVERS.format(approvers=approvers)
        if errors:
            raise ValidationError(errors)

    @property
    def approver_user_ids(self) -> list[int]:
        return [int(user_id) for user_id in (self.approver_config or {}).get("users") or []]


class ChangeRequest(models.Model):
    """A gated change, stored instead of being written: the call to replay, a frozen copy of the
    policy that gated it, and its state from pending to applied, rejected, expired or failed."""

    class State(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        APPLIED = "applied"
        REJECTED = "rejected"
        EXPIRED = "expired"
        FAILED = "failed"

    class ValidationStatus(models.TextChoices):
        VALID = "valid"
        INVALID = "invalid"
        EXPIRED = "expired"
        STALE = "stale"

    OPEN_STATES = (State.PENDING, State.APPROVED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    action_key = models.CharField(max_length=128)
    action_version = models.IntegerField(default=1)
    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="change_requests")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    resource_type = models.CharField(max_length=64)
    resource_id = models.CharField(max_length=128, null=True, blank=True)
    intent = models.JSONField(default=dict)
    intent_display = models.JSONField(default=dict)
    policy_snapshot = models.JSONField(default=dict)
    validation_status = models.CharField(
        max_length=16, choices=ValidationStatus.choices, default=ValidationStatus.VALID
    )
    validation_errors = models.JSONField(null=True, blank=True)
    validated_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    expires_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)
    apply_error = models.TextField(blank=True, default="")
    result_data = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "state"], name="change_request_project_state"),
            models.Index(fields=["action_key", "state"], name="change_request_action_state"),
            models.Index(fields=["expires_at"], name="change_request_expires"),
            models.Index(fields=["validation_status", "state"], name="change_request_validation"),
        ]

    def __str__(self) -> str:
        return f"{self.action_key} on {self.resource_type} {self.resource_id or '(new)'}: {self.state}"

    def can_be_canceled_by(self, user_id: int) -> bool:
        """Only the requester may cancel, only while pending, and not once someone approved it
        (unless the target changed since, which makes the request stale)."""
        if self.state != self.State.PENDING or self.created_by_id != user_id:
            return False
        has_approval = self.approvals.filter(decision=Approval.Decision.APPROVED).exists()
        return not has_approval or self.validation_status == self.ValidationStatus.STALE


class Approval(models.Model):
    """One user's vote on a change request."""

    class Decision(models.TextChoices):
        APPROVED = "approved"
        REJECTED = "rejected"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    change_request = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="approvals")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    reason = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["change_request", "created_by"], name="one_vote_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.created_by_id} {self.decision}"

from datetime import timedelta
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import OrganizationMembership
from accounts.serializers import UserBasicSerializer
from approvals.actions import gated_action_keys
from approvals.models import QUORUM_EXCEEDS_APPROVERS, Approval, ApprovalPolicy, ChangeRequest
from approvals.services import approver_refusal
from experiments_api.serializers import ActionBodySerializer, UnknownFieldHandlingMixin

QUORUM_AT_LEAST_ONE = "Quorum must be at least 1"
CONDITIONS_NOT_AN_OBJECT = "Conditions must be an object."
CONDITION_NOT_AN_OBJECT = "Each condition in a list of conditions must be an object."
POLICY_EXISTS = "A policy for this action already exists. You can edit the existing policy instead."


class ApprovalVoteSerializer(serializers.ModelSerializer):
    created_by = UserBasicSerializer(read_only=True)

    class Meta:
        model = Approval
        fields = ["id", "created_by", "decision", "reason", "created_at"]
        read_only_fields = fields


class ChangeRequestSerializer(serializers.ModelSerializer):
    created_by = UserBasicSerializer(read_only=True, allow_null=True)
    applied_by = UserBasicSerializer(read_only=True, allow_null=True)
    approvals = ApprovalVoteSerializer(many=True, read_only=True)
    can_approve = serializers.SerializerMethodField()
    can_cancel = serializers.SerializerMethodField()
    is_requester = serializers.SerializerMethodField()
    user_decision = serializers.SerializerMethodField()

    class Meta:
        model = ChangeRequest
        fields = [
            "id",
            "action_key",
            "action_version",
            "resource_type",
            "resource_id",
            "intent",
            "intent_display",
            "policy_snapshot",
            "validation_status",
            "validation_errors",
            "validated_at",
            "state",
            "created_by",
            "applied_by",
            "created_at",
            "updated_at",
            "expires_at",
            "applied_at",
            "apply_error",
            "result_data",
            "approvals",
            "can_approve",
            "can_cancel",
            "is_requester",
            "user_decision",
        ]
        read_only_fields = fields

    def user_id(self) -> int | None:
        request = self.context.get("request")
        return request.user.id if request is not None and request.user.is_authenticated else None

    def get_can_approve(self, change_request: ChangeRequest) -> bool:
        return approver_refusal(change_request, self.user_id()) is None

    def get_can_cancel(self, change_request: ChangeRequest) -> bool:
        user_id = self.user_id()
        return user_id is not None and change_request.can_be_canceled_by(user_id)

    def get_is_requester(self, change_request: ChangeRequest) -> bool:
        return change_request.created_by_id is not None and change_request.created_by_id == self.user_id()

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_user_decision(self, change_request: ChangeRequest) -> str | None:
        user_id = self.user_id()
        for vote in change_request.approvals.all():
            if vote.created_by_id == user_id:
                return vote.decision
        return None


class ChangeRequestActionBodySerializer(ActionBodySerializer):
    """The body of approve, reject and cancel."""

    reason = serializers.CharField(required=False, allow_blank=True, allow_null=True)


class ApprovalPolicySerializer(UnknownFieldHandlingMixin, serializers.ModelSerializer):
    created_by = UserBasicSerializer(read_only=True, allow_null=True)
    # The choices are the registered actions, read when the serializer is built: apps register them
    # in `AppConfig.ready()`, which may run after this module is imported.
    action_key = serializers.ChoiceField(choices=[])
    conditions = serializers.JSONField(required=False)
    approver_config = serializers.JSONField()
    bypass_org_membership_levels = serializers.ListField(child=serializers.JSONField(), required=False)
    bypass_roles = serializers.ListField(child=serializers.CharField(), required=False)
    expires_after = serializers.DurationField(required=False)

    class Meta:
        model = ApprovalPolicy
        fields = [
            "id",
            "action_key",
            "conditions",
            "approver_config",
            "allow_self_approve",
            "bypass_org_membership_levels",
            "bypass_roles",
            "expires_after",
            "enabled",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_by", "created_at", "updated_at"]

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["action_key"].choices = gated_action_keys()
        return fields

    def to_representation(self, policy: ApprovalPolicy) -> dict[str, Any]:
        data = super().to_representation(policy)
        data["bypass_roles"] = []
        return data

    def validate_conditions(self, value: Any) -> Any:
        if value is not None and not isinstance(value, dict | list):
            raise serializers.ValidationError(CONDITIONS_NOT_AN_OBJECT)
        # A list holds conditions that must all match; an item that is not even an object would
        # only ever gate everything.
        if isinstance(value, list) and not all(isinstance(item, dict) for item in value):
            raise serializers.ValidationError(CONDITION_NOT_AN_OBJECT)
        return value or {}

    def validate_approver_config(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("approver_config must be an object with quorum and users.")
        quorum = value.get("quorum", 1)
        if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
            raise serializers.ValidationError(QUORUM_AT_LEAST_ONE)
        users = value.get("users", [])
        if not isinstance(users, list) or any(
            isinstance(item, bool) or not isinstance(item, int) for item in users
        ):
            raise serializers.ValidationError("approver_config.users must be a list of user ids.")
        roles = value.get("roles") or []
        if roles:
            raise serializers.ValidationError(f"Roles do not exist: {', '.join(map(str, roles))}")
        organization = self.context["project"].organization
        members = set(
            OrganizationMembership.objects.filter(organization=organization, user_id__in=users).values_list(
                "user_id", flat=True
            )
        )
        strangers = sorted(set(users) - members)
        if strangers:
            raise serializers.ValidationError(f"Approvers must be members of this organization: {strangers}")
        if quorum > len(set(users)):
            raise serializers.ValidationError(QUORUM_EXCEEDS_APPROVERS.format(approvers=len(set(users))))
        return {"quorum": quorum, "users": users, "roles": []}

    def validate_bypass_org_membership_levels(self, value: list[Any]) -> list[int]:
        levels = []
        for item in value:
            try:
                if isinstance(item, bool):
                    raise ValueError
                levels.append(int(item))
            except (TypeError, ValueError):
                raise serializers.ValidationError(
                    f"Invalid membership level: {item!r}. Use 1 (member), 8 (admin) or 15 (owner)."
                ) from None
        return levels

    def validate_bypass_roles(self, value: list[str]) -> list[str]:
        if value:
            raise serializers.ValidationError(f"Roles do not exist: {', '.join(value)}")
        return value

    def validate_expires_after(self, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise serializers.ValidationError("expires_after must be positive.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        action_key = attrs.get("action_key", getattr(self.instance, "action_key", None))
        project = self.context["project"]
        if action_key is not None:
            duplicates = ApprovalPolicy.objects.filter(
                organization=project.organization, project=project, action_key=action_key
            )
            if self.instance is not None:
                duplicates = duplicates.exclude(pk=self.instance.pk)
            if duplicates.exists():
                raise serializers.ValidationError(POLICY_EXISTS)
        attrs.pop("bypass_roles", None)
        return attrs

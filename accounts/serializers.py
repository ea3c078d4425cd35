import uuid
from typing import Any

from rest_framework import serializers

from accounts.models import Organization, OrganizationMembership, PersonalAPIKey, Project, User
from accounts.representations import me, user_basic
from accounts.scopes import is_valid_scope
from experiments_api.serializers import UnknownFieldHandlingMixin


class UserBasicSerializer(serializers.ModelSerializer):
    """PostHog's `UserBasic`: how a user appears inside other objects (`created_by`, approvers)."""

    is_email_verified = serializers.BooleanField(read_only=True, allow_null=True)
    hedgehog_config = serializers.JSONField(read_only=True, allow_null=True)
    role_at_organization = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = User
        fields = [
            "id",
            "uuid",
            "distinct_id",
            "first_name",
            "last_name",
            "email",
            "is_email_verified",
            "hedgehog_config",
            "role_at_organization",
        ]
        read_only_fields = fields

    def to_representation(self, user: User) -> dict[str, Any] | None:
        return user_basic(user)


class OrganizationBasicSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "created_at"]
        read_only_fields = fields


class ProjectSerializer(serializers.ModelSerializer):
    organization = serializers.UUIDField(source="organization_id", read_only=True)

    class Meta:
        model = Project
        fields = [
            "id",
            "organization",
            "name",
            "api_token",
            "timezone",
            "flags_persistence_default",
            "default_experiment_stats_method",
            "default_experiment_confidence_level",
            "default_only_count_matured_users",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ProjectBasicSerializer(serializers.ModelSerializer):
    organization = serializers.UUIDField(source="organization_id", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "organization", "name", "api_token", "timezone"]
        read_only_fields = fields


class MembershipOrganizationSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="organization.id")
    name = serializers.CharField(source="organization.name")
    membership_level = serializers.IntegerField(source="level")

    class Meta:
        model = OrganizationMembership
        fields = ["id", "name", "membership_level"]
        read_only_fields = fields


class MeSerializer(serializers.ModelSerializer):
    team = ProjectBasicSerializer(source="current_project", read_only=True, allow_null=True)
    organization = OrganizationBasicSerializer(
        source="current_project.organization", read_only=True, allow_null=True
    )
    organizations = MembershipOrganizationSerializer(
        source="organization_memberships", many=True, read_only=True
    )
    is_email_verified = serializers.BooleanField(read_only=True, allow_null=True)

    class Meta:
        model = User
        fields = [
            "id",
            "uuid",
            "distinct_id",
            "first_name",
            "last_name",
            "email",
            "is_email_verified",
            "is_staff",
            "date_joined",
            "team",
            "organization",
            "organizations",
        ]
        read_only_fields = fields

    def to_representation(self, user: User) -> dict[str, Any]:
        request = self.context.get("request")
        key = request.auth if request is not None and isinstance(request.auth, PersonalAPIKey) else None
        return me(user, key)


class PersonalAPIKeySerializer(UnknownFieldHandlingMixin, serializers.ModelSerializer):
    """A key as the owner sees it. `value` carries the raw secret only in create and roll responses."""

    value = serializers.SerializerMethodField()
    user_id = serializers.IntegerField(read_only=True)
    scopes = serializers.ListField(child=serializers.CharField(max_length=100), max_length=200)
    scoped_teams = serializers.ListField(
        child=serializers.IntegerField(), required=False, allow_null=True, max_length=1000
    )
    scoped_organizations = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, allow_null=True, max_length=1000
    )

    class Meta:
        model = PersonalAPIKey
        fields = [
            "id",
            "label",
            "value",
            "mask_value",
            "created_at",
            "last_used_at",
            "user_id",
            "scopes",
            "scoped_teams",
            "scoped_organizations",
            "last_rolled_at",
        ]
        read_only_fields = [
            "id",
            "value",
            "mask_value",
            "created_at",
            "last_used_at",
            "user_id",
            "last_rolled_at",
        ]

    def get_value(self, key: PersonalAPIKey) -> str | None:
        return self.context.get("raw_secret")

    def to_representation(self, key: PersonalAPIKey) -> dict:
        data = super().to_representation(key)
        data["scopes"] = key.effective_scopes
        # Unscoped is stored as null (or, from older keys, []); PostHog always answers a list, and
        # its agent toolkit refuses anything else.
        data["scoped_teams"] = key.scoped_teams or []
        data["scoped_organizations"] = key.scoped_organizations or []
        return data

    def validate_scopes(self, scopes: list[str]) -> list[str]:
        for scope in scopes:
            if not is_valid_scope(scope):
                raise serializers.ValidationError(f"Invalid scope: {scope}")
        return scopes

    def validate_scoped_teams(self, project_ids: list[int] | None) -> list[int] | None:
        if not project_ids:
            return None
        user = self.context["request"].user
        reachable = set(
            Project.objects.filter(id__in=project_ids, organization__memberships__user=user).values_list(
                "id", flat=True
            )
        )
        if set(project_ids) - reachable:
            raise serializers.ValidationError(
                "You must be a member of all teams that you are scoping the key to."
            )
        return project_ids

    def validate_scoped_organizations(self, organization_ids: list[str] | None) -> list[str] | None:
        if not organization_ids:
            return None
        normalized = []
        for raw in organization_ids:
            try:
                normalized.append(str(uuid.UUID(raw)))
            except ValueError:
                raise serializers.ValidationError("Invalid organization UUID") from None
        user = self.context["request"].user
        member_of = {
            str(org_id)
            for org_id in OrganizationMembership.objects.filter(
                user=user, organization_id__in=normalized
            ).values_list("organization_id", flat=True)
        }
        if set(normalized) - member_of:
            raise serializers.ValidationError(
                "You must be a member of all organizations that you are scoping the key to."
            )
        return normalized

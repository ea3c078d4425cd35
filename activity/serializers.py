from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.representations import user_basic
from activity.models import ActivityLog

SYSTEM_USER = {"first_name": "System", "email": None, "is_system": True}


class ActivityLogSerializer(serializers.ModelSerializer):
    """An activity entry as PostHog renders it; system entries carry a "System" pseudo-user."""

    user = serializers.SerializerMethodField()
    unread = serializers.SerializerMethodField(
        help_text="is the date of this log item newer than the user's bookmark"
    )
    was_impersonated = serializers.SerializerMethodField()

    class Meta:
        model = ActivityLog
        fields = [
            "id",
            "user",
            "unread",
            "organization_id",
            "was_impersonated",
            "is_system",
            "activity",
            "item_id",
            "scope",
            "detail",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_user(self, entry: ActivityLog) -> dict:
        if entry.user is None:
            return dict(SYSTEM_USER)
        return user_basic(entry.user)

    def get_unread(self, entry: ActivityLog) -> bool:
        return False

    def get_was_impersonated(self, entry: ActivityLog) -> bool:
        return False

from typing import Any

from rest_framework import serializers

from accounts.serializers import UserBasicSerializer
from holdouts.models import ExperimentHoldout
from holdouts.representations import holdout_body


class ExperimentHoldoutSerializer(serializers.ModelSerializer):
    """A holdout as PostHog renders it (also embedded in experiments as `holdout`)."""

    created_by = UserBasicSerializer(read_only=True, allow_null=True)
    filters = serializers.JSONField()

    class Meta:
        model = ExperimentHoldout
        fields = ["id", "name", "description", "filters", "created_by", "created_at", "updated_at"]
        read_only_fields = ["id", "created_by", "created_at", "updated_at"]

    def to_representation(self, holdout: ExperimentHoldout) -> dict[str, Any]:
        return holdout_body(holdout)

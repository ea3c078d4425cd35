from typing import Any

from rest_framework import serializers

from experiments_api.serializers import ObjectBodySerializer
from results.queries import REFRESH_MODES


class QueryRequestSerializer(ObjectBodySerializer):
    """PostHog's `QueryRequest`. Its other fields (`name`, `filters_override`, `variables_override`,
    `limit_context`, ...) mean nothing for experiment queries and are ignored."""

    query = serializers.JSONField()
    refresh = serializers.JSONField(required=False, allow_null=True)
    client_query_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=200)

    def validate_refresh(self, value: Any) -> Any:
        if value is None or isinstance(value, bool) or value in REFRESH_MODES:
            return value
        raise serializers.ValidationError(f"refresh must be a boolean or one of: {', '.join(REFRESH_MODES)}.")

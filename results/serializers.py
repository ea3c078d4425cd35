from typing import Any

from rest_framework import serializers

from experiments_api.serializers import ObjectBodySerializer, UnknownFieldHandlingMixin
from results.queries import REFRESH_MODES


class QueryRequestSerializer(UnknownFieldHandlingMixin, ObjectBodySerializer):
    """PostHog's `QueryRequest`. `query` and `refresh` decide the answer; PostHog's other request
    fields are accepted so its clients work unchanged, and mean nothing for experiment queries."""

    query = serializers.JSONField()
    refresh = serializers.JSONField(required=False, allow_null=True)
    client_query_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=200)
    name = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=400)
    filters_override = serializers.DictField(required=False, allow_null=True)
    variables_override = serializers.DictField(required=False, allow_null=True)
    limit_context = serializers.CharField(required=False, allow_null=True, max_length=100)
    # PostHog's deprecated spelling of `refresh: "async"`.
    async_ = serializers.BooleanField(required=False, allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["async"] = fields.pop("async_")
        return fields

    def validate_refresh(self, value: Any) -> Any:
        if value is None or isinstance(value, bool) or value in REFRESH_MODES:
            return value
        raise serializers.ValidationError(f"refresh must be a boolean or one of: {', '.join(REFRESH_MODES)}.")

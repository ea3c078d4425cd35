from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.serializers import UserBasicSerializer
from experiments_api.serializers import UnknownFieldHandlingMixin
from experiments_api.tags import TagsField
from flags.hooks import COHORT_EXPERIMENTS_ATTRIBUTE, flag_experiments
from flags.models import Cohort, FeatureFlag
from flags.payload_encryption import plain_filters
from flags.representations import flag_full, minimal_flag
from flags.validation import validate_flag_filters, validate_flag_key

DEFAULT_NEW_FLAG_FILTERS: dict[str, Any] = {"groups": [{"properties": [], "rollout_percentage": 0}]}


NOTHING_BEHIND = "This server has none: always {value}."


class FeatureFlagSerializer(UnknownFieldHandlingMixin, serializers.ModelSerializer):
    """A feature flag as PostHog's `FeatureFlag` schema. Fields this server has nothing behind
    (surveys, dashboards, rollbacks, evaluation tags) answer PostHog's empty values. Encrypted
    payloads are read and written in plain text (callers of this API hold a secret)."""

    inert_fields = {
        "evaluation_tags": ([], None),
        "analytics_dashboards": ([], None),
        "has_enriched_analytics": (False, None),
        "rollback_conditions": (None, []),
        "performed_rollback": (False, None),
    }

    name = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="contains the description for the flag (field name `name` is kept for backwards-compatibility)",
    )
    key = serializers.CharField(max_length=400)
    filters = serializers.DictField(required=False)
    created_by = UserBasicSerializer(read_only=True, allow_null=True)
    last_modified_by = UserBasicSerializer(read_only=True, allow_null=True)
    version = serializers.IntegerField(
        required=False,
        help_text="The version you read. With `original_flag`, a concurrent conflicting edit is refused with 409.",
    )
    original_flag = serializers.DictField(required=False, write_only=True)
    ensure_experience_continuity = serializers.BooleanField(required=False, allow_null=True)
    creation_context = serializers.ChoiceField(
        choices=FeatureFlag.CreationContext.choices, required=False, write_only=True
    )
    evaluation_runtime = serializers.ChoiceField(
        choices=FeatureFlag.EvaluationRuntime.choices, required=False, allow_null=True
    )
    experiment_set = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    tags = TagsField(help_text="Tag names (trimmed, lowercased); filter lists with `?tags=[...]`.")
    evaluation_tags = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text=NOTHING_BEHIND.format(value="[]")
    )
    surveys = serializers.DictField(read_only=True, help_text=NOTHING_BEHIND.format(value="{}"))
    features = serializers.DictField(read_only=True, help_text=NOTHING_BEHIND.format(value="{}"))
    usage_dashboard = serializers.IntegerField(
        read_only=True, allow_null=True, help_text=NOTHING_BEHIND.format(value="null")
    )
    analytics_dashboards = serializers.ListField(
        child=serializers.IntegerField(), read_only=True, help_text=NOTHING_BEHIND.format(value="[]")
    )
    has_enriched_analytics = serializers.BooleanField(
        read_only=True, help_text=NOTHING_BEHIND.format(value="false")
    )
    rollback_conditions = serializers.JSONField(
        read_only=True, allow_null=True, help_text=NOTHING_BEHIND.format(value="null")
    )
    performed_rollback = serializers.BooleanField(
        read_only=True, help_text=NOTHING_BEHIND.format(value="false")
    )
    last_called_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="This server does not track it: always null."
    )
    _create_in_folder = serializers.CharField(
        required=False, allow_blank=True, write_only=True, help_text="Accepted; this server has no folders."
    )
    _should_create_usage_dashboard = serializers.BooleanField(
        required=False, write_only=True, help_text="Accepted; this server has no dashboards."
    )
    is_remote_configuration = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text="A remote-config flag: its `true` payload is served by the `remote_config` endpoint.",
    )
    has_encrypted_payloads = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text="Payloads are stored encrypted; remote-config flags with it are not sent to SDKs.",
    )
    is_simple_flag = serializers.BooleanField(read_only=True)
    rollout_percentage = serializers.FloatField(read_only=True, allow_null=True)
    status = serializers.CharField(read_only=True)
    can_edit = serializers.BooleanField(read_only=True)
    user_access_level = serializers.CharField(
        read_only=True, allow_null=True, help_text="The effective access level the user has for this object"
    )

    class Meta:
        model = FeatureFlag
        fields = [
            "id",
            "name",
            "key",
            "filters",
            "deleted",
            "active",
            "created_by",
            "created_at",
            "updated_at",
            "version",
            "last_modified_by",
            "ensure_experience_continuity",
            "experiment_set",
            "is_simple_flag",
            "rollout_percentage",
            "can_edit",
            "user_access_level",
            "creation_context",
            "is_remote_configuration",
            "has_encrypted_payloads",
            "status",
            "evaluation_runtime",
            "original_flag",
            "tags",
            "evaluation_tags",
            "surveys",
            "features",
            "usage_dashboard",
            "analytics_dashboards",
            "has_enriched_analytics",
            "rollback_conditions",
            "performed_rollback",
            "last_called_at",
            "_create_in_folder",
            "_should_create_usage_dashboard",
        ]
        read_only_fields = [
            "id",
            "created_by",
            "created_at",
            "updated_at",
            "last_modified_by",
            "experiment_set",
            "is_simple_flag",
            "rollout_percentage",
            "can_edit",
            "user_access_level",
            "status",
        ]
        extra_kwargs = {"deleted": {"required": False}, "active": {"required": False}}

    def to_representation(self, flag: FeatureFlag) -> dict[str, Any]:
        request = self.context.get("request")
        return flag_full(
            flag,
            user_id=request.user.id if request is not None else None,
            membership_level=self.context.get("membership_level", 1),
        )

    def validate_key(self, key: str) -> str:
        # As PostHog, a taken key is an error on the `key` field (the service re-checks under its lock).
        return validate_flag_key(
            key,
            project=self.context["project"],
            exclude_flag_id=self.instance.pk if self.instance is not None else None,
        )

    def validate_filters(self, filters: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None and "groups" not in filters:
            # Filters without release conditions are a partial edit (say, only payloads): every key
            # not sent keeps its current value, rather than the flag silently losing it.
            current = plain_filters(
                self.instance.filters or {}, encrypted=self.instance.has_encrypted_payloads
            )
            filters = {**current, **filters}
        return validate_flag_filters(
            filters, project=self.context["project"], is_create=self.instance is None
        )

    def validate_ensure_experience_continuity(self, value: bool | None) -> bool:
        return bool(value)


class MinimalFeatureFlagSerializer(serializers.ModelSerializer):
    """The flag as embedded in an experiment (PostHog's `MinimalFeatureFlag`)."""

    team_id = serializers.IntegerField(source="project_id", read_only=True)
    evaluation_tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    evaluation_contexts = serializers.ListField(child=serializers.CharField(), read_only=True)
    bucketing_identifier = serializers.CharField(read_only=True)

    class Meta:
        model = FeatureFlag
        fields = [
            "id",
            "team_id",
            "name",
            "key",
            "filters",
            "deleted",
            "active",
            "ensure_experience_continuity",
            "has_encrypted_payloads",
            "version",
            "evaluation_runtime",
            "bucketing_identifier",
            "evaluation_tags",
            "evaluation_contexts",
        ]
        read_only_fields = fields

    def to_representation(self, flag: FeatureFlag) -> dict[str, Any]:
        return minimal_flag(flag)


class CohortSerializer(serializers.ModelSerializer):
    """A cohort definition (read-only here: membership is not computed by this server)."""

    created_by = UserBasicSerializer(read_only=True, allow_null=True)
    experiment_set = serializers.SerializerMethodField()
    count = serializers.SerializerMethodField()
    errors_calculating = serializers.SerializerMethodField()
    last_calculation = serializers.SerializerMethodField()
    query = serializers.SerializerMethodField(help_text="Always null: cohorts here are defined by `filters`.")
    cohort_type = serializers.SerializerMethodField()

    class Meta:
        model = Cohort
        fields = [
            "id",
            "name",
            "description",
            "groups",
            "deleted",
            "filters",
            "is_calculating",
            "created_by",
            "created_at",
            "last_calculation",
            "errors_calculating",
            "count",
            "is_static",
            "experiment_set",
            "query",
            "cohort_type",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_experiment_set(self, cohort: Cohort) -> list[int]:
        prefetched = getattr(cohort, COHORT_EXPERIMENTS_ATTRIBUTE, None)
        if prefetched is not None:
            return [experiment.id for experiment in prefetched]
        return flag_experiments().cohort_experiment_ids(cohort)

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_count(self, cohort: Cohort) -> int | None:
        return None

    def get_errors_calculating(self, cohort: Cohort) -> int:
        return 0

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_last_calculation(self, cohort: Cohort) -> str | None:
        return None

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_query(self, cohort: Cohort) -> None:
        return None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_cohort_type(self, cohort: Cohort) -> None:
        return None

"""Experiment and saved-metric serializers: input shape checks (errors name the field) and the
PostHog response shapes. Cross-field rules run in `experiments/services.py`."""

from typing import Any

from rest_framework import serializers

from accounts.serializers import UserBasicSerializer
from experiments.fields import DECLARED_SERIALIZER_FIELDS, DETAIL_FIELDS, LIST_FIELDS, READ_ONLY_FIELDS
from experiments.lifecycle import ExperimentStatus
from experiments.metric_schema import validate_metrics
from experiments.models import (
    Experiment,
    ExperimentMetricsRecalculation,
    ExperimentSavedMetric,
    ExperimentToSavedMetric,
)
from experiments.representations import experiment_basic, experiment_full, saved_metric_link
from experiments.validation import (
    validate_date_range,
    validate_excluded_variants_shape,
    validate_exposure_criteria,
    validate_ordering_shape,
    validate_running_time_calculation,
    validate_saved_metrics_ids_shape,
    validated_parameters,
)
from experiments_api.serializers import ActionBodySerializer, UnknownFieldHandlingMixin
from experiments_api.tags import TagsField
from flags.serializers import MinimalFeatureFlagSerializer
from flags.validation import FLAG_KEY_INVALID, FLAG_KEY_PATTERN
from holdouts.models import ExperimentHoldout
from holdouts.serializers import ExperimentHoldoutSerializer

CONCLUSION_CHOICES = Experiment.Conclusion.choices
# Accepted on writes, never rendered: they steer the write.
WRITE_CONTROLS = ("allow_unknown_events", "_create_in_folder", "update_feature_flag_params")
MUST_BE_AN_OBJECT = "{field} must be an object"
MUST_BE_A_LIST = "{field} must be a list"
MUST_BE_A_LIST_OF_OBJECTS = "{field} must be a list of objects"


def object_or_null(value: Any, field: str) -> Any:
    if value is not None and not isinstance(value, dict):
        raise serializers.ValidationError(MUST_BE_AN_OBJECT.format(field=field))
    return value


class ExperimentToSavedMetricSerializer(serializers.ModelSerializer):
    """An experiment's link to a saved metric, with the metric's query and name inlined."""

    query = serializers.JSONField(read_only=True)
    name = serializers.CharField(read_only=True)

    class Meta:
        model = ExperimentToSavedMetric
        fields = ["id", "experiment", "saved_metric", "metadata", "created_at", "query", "name"]
        read_only_fields = fields

    def to_representation(self, link: ExperimentToSavedMetric) -> dict[str, Any]:
        return saved_metric_link(link)


class ExperimentBaseSerializer(serializers.ModelSerializer):
    """Read fields shared by the list and detail representations."""

    feature_flag_key = serializers.CharField(
        max_length=400, help_text="Unique key for the experiment's feature flag."
    )
    feature_flag = MinimalFeatureFlagSerializer(read_only=True)
    holdout = ExperimentHoldoutSerializer(read_only=True, allow_null=True)
    created_by = UserBasicSerializer(read_only=True, allow_null=True)
    status = serializers.ChoiceField(choices=ExperimentStatus.choices, read_only=True)
    is_legacy = serializers.BooleanField(read_only=True)
    user_access_level = serializers.CharField(read_only=True, allow_null=True)
    parameters = serializers.JSONField(required=False, allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for name, build in DECLARED_SERIALIZER_FIELDS.items():
            if name in fields:
                fields[name] = build()
        return fields

    def render_context(self) -> dict[str, Any]:
        request = self.context.get("request")
        return {
            "user_id": request.user.id if request is not None else None,
            "membership_level": self.context.get("membership_level", 1),
        }


class ExperimentSerializer(UnknownFieldHandlingMixin, ExperimentBaseSerializer):
    """The full experiment, for create, retrieve, update and every lifecycle action."""

    name = serializers.CharField(max_length=400)
    description = serializers.CharField(max_length=3000, required=False, allow_null=True, allow_blank=True)
    # pk_field: without it a float id is truncated by the lookup, so 1.5 would pick holdout 1.
    holdout_id = serializers.PrimaryKeyRelatedField(
        queryset=ExperimentHoldout.objects.none(),
        source="holdout",
        required=False,
        allow_null=True,
        pk_field=serializers.IntegerField(),
    )
    saved_metrics = ExperimentToSavedMetricSerializer(many=True, read_only=True)
    saved_metrics_ids = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="The saved metrics to link, as `[{id, metadata}]`; read back as the current links (null when none).",
    )
    running_time_calculation = serializers.JSONField(required=False, allow_null=True)
    excluded_variants = serializers.JSONField(required=False, allow_null=True)
    secondary_metrics = serializers.JSONField(required=False, allow_null=True)
    filters = serializers.JSONField(required=False, allow_null=True)
    exposure_criteria = serializers.JSONField(required=False, allow_null=True)
    metrics = serializers.JSONField(required=False, allow_null=True)
    metrics_secondary = serializers.JSONField(required=False, allow_null=True)
    stats_config = serializers.JSONField(required=False, allow_null=True)
    scheduling_config = serializers.JSONField(required=False, allow_null=True)
    primary_metrics_ordered_uuids = serializers.JSONField(required=False, allow_null=True)
    secondary_metrics_ordered_uuids = serializers.JSONField(required=False, allow_null=True)
    type = serializers.ChoiceField(choices=Experiment.Type.choices, required=False, allow_null=True)
    conclusion = serializers.ChoiceField(choices=CONCLUSION_CHOICES, required=False, allow_null=True)
    conclusion_comment = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=4000
    )
    archived = serializers.BooleanField(required=False)
    deleted = serializers.BooleanField(required=False, allow_null=True)
    only_count_matured_users = serializers.BooleanField(required=False)
    exposure_preaggregation_enabled = serializers.BooleanField(required=False)
    allow_unknown_events = serializers.BooleanField(
        required=False,
        write_only=True,
        help_text="Accepted for compatibility; event names are not checked against the events received.",
    )
    update_feature_flag_params = serializers.BooleanField(
        required=False,
        write_only=True,
        help_text="On a running experiment, apply the flag configuration sent in `parameters` to the flag.",
    )
    _create_in_folder = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="Accepted for compatibility; folders are not kept.",
    )

    class Meta:
        model = Experiment
        fields = [*DETAIL_FIELDS, *WRITE_CONTROLS]
        read_only_fields = list(READ_ONLY_FIELDS)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        project = self.context.get("project")
        if project is not None:
            fields["holdout_id"].queryset = ExperimentHoldout.objects.filter(project=project)
        return fields

    def to_representation(self, experiment: Experiment) -> dict[str, Any]:
        return experiment_full(experiment, **self.render_context())

    def validate_feature_flag_key(self, key: str) -> str:
        if not FLAG_KEY_PATTERN.match(key):
            raise serializers.ValidationError(FLAG_KEY_INVALID, code="invalid_key")
        return key

    def validate_parameters(self, value: Any) -> Any:
        return validated_parameters(object_or_null(value, "parameters"))

    def validate_running_time_calculation(self, value: Any) -> Any:
        validate_running_time_calculation(value)
        return value

    def validate_excluded_variants(self, value: Any) -> Any:
        validate_excluded_variants_shape(value)
        return value

    def validate_exposure_criteria(self, value: Any) -> Any:
        validate_exposure_criteria(value)
        return value

    def validate_metrics(self, value: Any) -> Any:
        validate_metrics(value)
        return value

    def validate_metrics_secondary(self, value: Any) -> Any:
        validate_metrics(value)
        return value

    def validate_deleted(self, value: bool | None) -> bool:
        # PostHog's column is nullable and its document declares null; null is not deleted.
        return bool(value)

    def validate_saved_metrics_ids(self, value: Any) -> Any:
        if value is not None and not isinstance(value, list):
            raise serializers.ValidationError(
                f'Expected a list of items but got type "{type(value).__name__}".', code="not_a_list"
            )
        validate_saved_metrics_ids_shape(value)
        return value

    def validate_secondary_metrics(self, value: Any) -> Any:
        if value is not None and not isinstance(value, list):
            raise serializers.ValidationError(MUST_BE_A_LIST.format(field="secondary_metrics"))
        if value and not all(isinstance(item, dict) for item in value):
            raise serializers.ValidationError(MUST_BE_A_LIST_OF_OBJECTS.format(field="secondary_metrics"))
        return value

    def validate_filters(self, value: Any) -> Any:
        # The column is not nullable: an explicit null means "no filters".
        return object_or_null(value, "filters") or {}

    def validate_stats_config(self, value: Any) -> Any:
        return object_or_null(value, "stats_config")

    def validate_scheduling_config(self, value: Any) -> Any:
        return object_or_null(value, "scheduling_config")

    def validate_primary_metrics_ordered_uuids(self, value: Any) -> Any:
        validate_ordering_shape(value)
        return value

    def validate_secondary_metrics_ordered_uuids(self, value: Any) -> Any:
        validate_ordering_shape(value)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # As PostHog, the range is checked only when both dates are in the payload.
        validate_date_range(attrs.get("start_date"), attrs.get("end_date"))
        return attrs


class ExperimentBasicSerializer(ExperimentBaseSerializer):
    """The list representation: no metric definitions."""

    saved_metrics = ExperimentToSavedMetricSerializer(many=True, read_only=True)
    saved_metrics_ids = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = Experiment
        fields = list(LIST_FIELDS)
        read_only_fields = fields

    def to_representation(self, experiment: Experiment) -> dict[str, Any]:
        return experiment_basic(experiment, **self.render_context())


class EndExperimentSerializer(ActionBodySerializer):
    conclusion = serializers.ChoiceField(choices=CONCLUSION_CHOICES, required=False, allow_null=True)
    conclusion_comment = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=4000
    )


class ShipVariantSerializer(EndExperimentSerializer):
    variant_key = serializers.CharField(help_text="The key of the variant to ship.")
    release_to_everyone = serializers.BooleanField(
        default=False,
        help_text="Also prepend a release condition that rolls the variant out to 100% of users.",
    )


class ArchiveExperimentSerializer(ActionBodySerializer):
    disable_feature_flag = serializers.BooleanField(
        default=False,
        help_text="Not supported by this server: pause the experiment or edit its flag instead.",
    )

    def validate_disable_feature_flag(self, value: bool) -> bool:
        if value:
            raise serializers.ValidationError(
                "Disabling the feature flag while archiving is not supported; pause the experiment or edit the flag."
            )
        return value


class DuplicateExperimentSerializer(ActionBodySerializer):
    feature_flag_key = serializers.CharField(
        required=False, max_length=400, help_text="Flag key for the copy; default: share the source's flag."
    )
    name = serializers.CharField(required=False, allow_blank=True, max_length=400)

    def validate_feature_flag_key(self, key: str) -> str:
        if not FLAG_KEY_PATTERN.match(key):
            raise serializers.ValidationError(FLAG_KEY_INVALID, code="invalid_key")
        return key


class CopyToProjectSerializer(ActionBodySerializer):
    target_team_id = serializers.IntegerField(min_value=1, help_text="The project to copy the experiment to.")
    feature_flag_key = serializers.CharField(required=False, allow_blank=True, max_length=400)
    name = serializers.CharField(required=False, allow_blank=True, max_length=400)

    def validate_feature_flag_key(self, key: str) -> str:
        if key and not FLAG_KEY_PATTERN.match(key):
            raise serializers.ValidationError(FLAG_KEY_INVALID, code="invalid_key")
        return key


class RecalculateTimeseriesSerializer(ActionBodySerializer):
    metric = serializers.JSONField(required=False)
    fingerprint = serializers.CharField(required=False, allow_blank=True, max_length=64)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(attrs.get("metric"), dict) or not attrs["metric"]:
            raise serializers.ValidationError("metric is required")
        if not attrs.get("fingerprint"):
            raise serializers.ValidationError("fingerprint is required")
        return attrs


class MetricsRecalculationSerializer(ActionBodySerializer):
    trigger = serializers.ChoiceField(
        choices=ExperimentMetricsRecalculation.Trigger.choices,
        required=False,
        default=ExperimentMetricsRecalculation.Trigger.MANUAL,
        help_text="Why the recalculation is asked for; PostHog's UI sends `manual`.",
    )


class ExperimentSavedMetricSerializer(UnknownFieldHandlingMixin, serializers.ModelSerializer):
    """A shared metric; its query is validated like an inline experiment metric."""

    created_by = UserBasicSerializer(read_only=True, allow_null=True)
    query = serializers.JSONField()
    metadata = serializers.JSONField(required=False, allow_null=True)
    tags = TagsField(help_text="Tag names (trimmed, lowercased); filter lists with `?tags=[...]`.")

    class Meta:
        model = ExperimentSavedMetric
        fields = [
            "id",
            "name",
            "description",
            "query",
            "metadata",
            "created_by",
            "created_at",
            "updated_at",
            "tags",
        ]
        read_only_fields = ["id", "created_by", "created_at", "updated_at"]

    def validate_query(self, query: Any) -> Any:
        if not isinstance(query, dict):
            raise serializers.ValidationError(MUST_BE_AN_OBJECT.format(field="query"))
        validate_metrics([query])
        return query

    def validate_metadata(self, value: Any) -> Any:
        return object_or_null(value, "metadata")

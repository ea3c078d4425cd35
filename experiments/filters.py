"""The list filters of experiments and saved metrics, as PostHog's list endpoints take them.

Each parameter is declared once here: django-filter parses it and drf-spectacular documents it.
Values are taken as sent, surrounding spaces included (as PostHog reads them). Malformed values answer
400 with PostHog's messages; values PostHog ignores (an unknown status, an unparseable creator id)
are ignored."""

import django_filters
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError

from experiments.models import Experiment, ExperimentSavedMetric
from experiments.selectors import filter_by_status, order_experiments, parse_created_by_ids
from experiments_api.tags import tagged_with_any, tags_from_query

FEATURE_FLAG_ID_NOT_INTEGER = "feature_flag_id must be an integer"
TAGS_HELP = "JSON-encoded list of tag names: those with any of them"
ORDER_HELP = (
    "created_at, created_by, updated_at, name, start_date, end_date, duration, status "
    "(prefix - to reverse); default -created_at"
)


class ExperimentFilter(django_filters.FilterSet):
    status = django_filters.CharFilter(
        method="filter_status", strip=False, help_text="draft, running, paused, stopped (or complete), all"
    )
    archived = django_filters.CharFilter(
        method="filter_archived",
        strip=False,
        help_text="'true' for archived experiments only; anything else or absent: non-archived only",
    )
    created_by_id = django_filters.CharFilter(
        method="filter_created_by_id", strip=False, help_text="A user id, a JSON list or comma-separated ids"
    )
    feature_flag_id = django_filters.CharFilter(method="filter_feature_flag_id", strip=False)
    search = django_filters.CharFilter(
        field_name="name",
        lookup_expr="icontains",
        strip=False,
        help_text="Case-insensitive match on the name",
    )
    prompt_name = django_filters.CharFilter(field_name="parameters__prompt_metadata__name", strip=False)
    tags = django_filters.CharFilter(method="filter_tags", strip=False, help_text=TAGS_HELP)
    order = django_filters.CharFilter(method="filter_order", strip=False, help_text=ORDER_HELP)

    class Meta:
        model = Experiment
        fields = [
            "status",
            "archived",
            "created_by_id",
            "feature_flag_id",
            "search",
            "prompt_name",
            "tags",
            "order",
        ]

    def filter_queryset(self, queryset: QuerySet[Experiment]) -> QuerySet[Experiment]:
        """The filters given, then the defaults of the absent ones: non-archived, newest first."""
        queryset = super().filter_queryset(queryset)
        if not self.form.cleaned_data.get("archived"):
            queryset = self.filter_archived(queryset, "archived", "")
        if not self.form.cleaned_data.get("order"):
            queryset = order_experiments(queryset, None)
        return queryset

    def filter_status(self, queryset: QuerySet[Experiment], name: str, value: str) -> QuerySet[Experiment]:
        return filter_by_status(queryset, value)

    def filter_archived(self, queryset: QuerySet[Experiment], name: str, value: str) -> QuerySet[Experiment]:
        return queryset.filter(archived=value.lower() == "true")

    def filter_created_by_id(
        self, queryset: QuerySet[Experiment], name: str, value: str
    ) -> QuerySet[Experiment]:
        ids = parse_created_by_ids(value)
        return queryset.filter(created_by_id__in=ids) if ids else queryset

    def filter_feature_flag_id(
        self, queryset: QuerySet[Experiment], name: str, value: str
    ) -> QuerySet[Experiment]:
        try:
            flag_id = int(value)
        except ValueError:
            raise ValidationError(FEATURE_FLAG_ID_NOT_INTEGER) from None
        return queryset.filter(feature_flag_id=flag_id) if 0 < flag_id < 2**63 else queryset.none()

    def filter_tags(self, queryset: QuerySet[Experiment], name: str, value: str) -> QuerySet[Experiment]:
        return tagged_with_any(queryset, tags_from_query(value))

    def filter_order(self, queryset: QuerySet[Experiment], name: str, value: str) -> QuerySet[Experiment]:
        return order_experiments(queryset, value)


class ExperimentSavedMetricFilter(django_filters.FilterSet):
    tags = django_filters.CharFilter(method="filter_tags", strip=False, help_text=TAGS_HELP)

    class Meta:
        model = ExperimentSavedMetric
        fields = ["tags"]

    def filter_tags(
        self, queryset: QuerySet[ExperimentSavedMetric], name: str, value: str
    ) -> QuerySet[ExperimentSavedMetric]:
        return tagged_with_any(queryset, tags_from_query(value))

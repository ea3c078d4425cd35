"""The query parameters of the flags list, parsed in one place and documented in the API schema."""

import django_filters
from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema_field

from experiments_api.tags import tagged_with_any, tags_from_query
from flags.models import FeatureFlag

ACTIVE_VALUES = ("true", "false")


class FeatureFlagFilter(django_filters.FilterSet):
    """`search` (key or name contains it), `active` (`true`/`false`, any case; other values are
    ignored, as PostHog ignores them) and `tags` (flags with any of the tags; malformed is a 400).
    Values are taken as sent, surrounding spaces included."""

    search = django_filters.CharFilter(method="filter_search", strip=False, help_text="Search by key or name")
    active = django_filters.CharFilter(method="filter_active", strip=False)
    tags = django_filters.CharFilter(
        method="filter_tags",
        strip=False,
        help_text="JSON-encoded list of tag names: flags with any of them",
    )

    class Meta:
        model = FeatureFlag
        fields = ["search", "active", "tags"]

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(Q(key__icontains=value) | Q(name__icontains=value))

    @extend_schema_field({"type": "string", "enum": list(ACTIVE_VALUES)})
    def filter_active(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value.lower() not in ACTIVE_VALUES:
            return queryset
        return queryset.filter(active=value.lower() == "true")

    def filter_tags(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return tagged_with_any(queryset, tags_from_query(value))

import uuid

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins

from accounts.scoping import ProjectScopedGenericViewSet
from activity.models import ActivityLog
from activity.pagination import ActivityLogPagination
from activity.serializers import ActivityLogSerializer


def filter_activity(queryset: QuerySet, params) -> QuerySet:
    """PostHog's activity filters: `scope`, `scopes` (comma-separated), `item_id`, `user`."""
    if scope := params.get("scope"):
        queryset = queryset.filter(scope=scope)
    if scopes := params.get("scopes"):
        queryset = queryset.filter(scope__in=[item.strip() for item in scopes.split(",") if item.strip()])
    if item_id := params.get("item_id"):
        queryset = queryset.filter(item_id=item_id)
    if user := params.get("user"):
        if user.isascii() and user.isdigit() and len(user) < 19:
            queryset = queryset.filter(user_id=int(user))
        else:
            try:
                queryset = queryset.filter(user__uuid=uuid.UUID(user))
            except ValueError:
                queryset = queryset.none()
    return queryset


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter(
                "scope", OpenApiTypes.STR, description="Only entries of this scope, e.g. Experiment"
            ),
            OpenApiParameter("scopes", OpenApiTypes.STR, description="Comma-separated scopes"),
            OpenApiParameter("item_id", OpenApiTypes.STR, description="Only entries about this item"),
            OpenApiParameter("user", OpenApiTypes.STR, description="Only entries by this user (id or uuid)"),
        ]
    )
)
class ActivityLogViewSet(mixins.ListModelMixin, ProjectScopedGenericViewSet):
    """The project's activity log, newest first."""

    scope_object = "activity_log"
    serializer_class = ActivityLogSerializer
    queryset = ActivityLog.objects.all()
    pagination_class = ActivityLogPagination

    def filter_queryset_for_action(self, queryset: QuerySet) -> QuerySet:
        return filter_activity(queryset.select_related("user"), self.request.query_params).order_by(
            "-created_at", "-id"
        )

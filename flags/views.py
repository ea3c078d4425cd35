from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.project_tokens import delivery_project_for_token
from accounts.scoping import ProjectScopedViewSetMixin
from activity.pagination import RESOURCE_PAGE_PARAMETERS, activity_page_response
from activity.selectors import item_activity
from approvals.mixins import ApprovalHandlingMixin
from experiments_api.mixins import SoftDeletedModelViewSet
from experiments_api.response_cache import VersionedResponseCacheMixin
from flags.delivery import definitions_response
from flags.filters import FeatureFlagFilter
from flags.models import Cohort, FeatureFlag
from flags.selectors import cohort_queryset, flag_list, flag_queryset
from flags.serializers import DEFAULT_NEW_FLAG_FILTERS, CohortSerializer, FeatureFlagSerializer
from flags.services import FLAG_ACTIVITY_SCOPE, FLAG_WRITABLE_FIELDS, flag_create, flag_update

FLAG_CANNOT_BE_CREATED_DELETED = "A feature flag cannot be created already deleted."


class FeatureFlagViewSet(
    VersionedResponseCacheMixin,
    ApprovalHandlingMixin,
    ProjectScopedViewSetMixin,
    SoftDeletedModelViewSet,
):
    """Feature flags. Soft delete with `PATCH {"deleted": true}`; DELETE answers 405."""

    scope_object = "feature_flag"
    serializer_class = FeatureFlagSerializer
    queryset = FeatureFlag.objects.all()
    filterset_class = FeatureFlagFilter

    def filter_queryset_for_action(self, queryset: QuerySet) -> QuerySet:
        return flag_list(self.project) if self.action == "list" else flag_queryset(self.project)

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        # The list's query parameters narrow the list only: a flag's own URL answers whatever they say.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def perform_create(self, serializer: FeatureFlagSerializer) -> None:
        data = serializer.validated_data
        if data.get("deleted"):
            raise serializers.ValidationError({"deleted": [FLAG_CANNOT_BE_CREATED_DELETED]})
        serializer.instance = flag_create(
            project=self.project,
            user=self.request.user,
            key=data["key"],
            filters=data.get("filters", DEFAULT_NEW_FLAG_FILTERS),
            name=data.get("name", ""),
            active=data.get("active", True),
            ensure_experience_continuity=data.get("ensure_experience_continuity", False),
            creation_context=data.get("creation_context", FeatureFlag.CreationContext.FEATURE_FLAGS),
            evaluation_runtime=data.get("evaluation_runtime", FeatureFlag.EvaluationRuntime.ALL),
            tags=data.get("tags"),
            is_remote_configuration=data.get("is_remote_configuration", False),
            has_encrypted_payloads=data.get("has_encrypted_payloads", False),
        )

    def perform_update(self, serializer: FeatureFlagSerializer) -> None:
        data = serializer.validated_data
        changes = {field: value for field, value in data.items() if field in FLAG_WRITABLE_FIELDS}
        serializer.instance = flag_update(
            flag=serializer.instance,
            user=self.request.user,
            changes=changes,
            expected_version=data.get("version"),
            original_flag=data.get("original_flag"),
        )

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT, 304: OpenApiResponse(description="Not modified (ETag matched)")},
        description="The project's flag definitions for local evaluation, as `/api/feature_flag/local_evaluation/`.",
    )
    @action(detail=False, methods=["get"], url_path="local_evaluation", required_scopes=["feature_flag:read"])
    def local_evaluation(self, request: Request, *args, **kwargs) -> HttpResponse:
        return definitions_response(request, delivery_project_for_token(self.project.api_token))

    @extend_schema(responses=OpenApiTypes.OBJECT, parameters=RESOURCE_PAGE_PARAMETERS)
    @action(detail=True, methods=["get"], required_scopes=["activity_log:read"])
    def activity(self, request: Request, *args, **kwargs) -> Response:
        flag = self.get_object()
        return activity_page_response(
            item_activity(project=self.project, scope=FLAG_ACTIVITY_SCOPE, item_id=flag.id), request
        )


class CohortViewSet(
    ProjectScopedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Cohort definitions, with the experiments that use each as their exposure cohort."""

    scope_object = "cohort"
    serializer_class = CohortSerializer
    queryset = Cohort.objects.all()

    def filter_queryset_for_action(self, queryset: QuerySet) -> QuerySet:
        return cohort_queryset(self.project)

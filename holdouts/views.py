from django.db.models import QuerySet
from rest_framework import serializers, viewsets

from accounts.scoping import ProjectScopedViewSetMixin
from approvals.mixins import ApprovalHandlingMixin
from experiments_api.mixins import BodylessActionsMixin
from experiments_api.response_cache import VersionedResponseCacheMixin
from experiments_api.serializers import UnknownFieldHandlingMixin
from holdouts.models import ExperimentHoldout
from holdouts.serializers import ExperimentHoldoutSerializer
from holdouts.services import holdout_create, holdout_delete, holdout_update
from holdouts.validation import validate_holdout_filters


class ExperimentHoldoutWriteSerializer(UnknownFieldHandlingMixin, ExperimentHoldoutSerializer):
    name = serializers.CharField(max_length=400)
    description = serializers.CharField(max_length=400, required=False, allow_null=True, allow_blank=True)

    def validate_filters(self, filters):
        return validate_holdout_filters(filters)


class ExperimentHoldoutViewSet(
    VersionedResponseCacheMixin,
    BodylessActionsMixin,
    ApprovalHandlingMixin,
    ProjectScopedViewSetMixin,
    viewsets.ModelViewSet,
):
    """Holdout groups. Deleting a holdout (204) detaches it from its experiments and their flags."""

    scope_object = "experiment"
    serializer_class = ExperimentHoldoutWriteSerializer
    queryset = ExperimentHoldout.objects.all()

    def filter_queryset_for_action(self, queryset: QuerySet) -> QuerySet:
        return queryset.select_related("created_by").order_by("-created_at", "-id")

    def perform_create(self, serializer: ExperimentHoldoutWriteSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = holdout_create(
            project=self.project,
            user=self.request.user,
            name=data["name"],
            filters=data["filters"],
            description=data.get("description"),
        )

    def perform_update(self, serializer: ExperimentHoldoutWriteSerializer) -> None:
        serializer.instance = holdout_update(
            holdout=serializer.instance, user=self.request.user, changes=dict(serializer.validated_data)
        )

    def perform_destroy(self, instance: ExperimentHoldout) -> None:
        holdout_delete(holdout=instance, user=self.request.user)

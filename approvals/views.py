from collections.abc import Callable

import django_filters
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import OrganizationMembership
from accounts.permissions import APIScopePermission
from accounts.scoping import ProjectScopedViewSetMixin
from approvals.models import ApprovalPolicy, ChangeRequest
from approvals.serializers import (
    ApprovalPolicySerializer,
    ChangeRequestActionBodySerializer,
    ChangeRequestSerializer,
)
from approvals.services import (
    ChangeRequestActionError,
    NeverApplicable,
    Outcome,
    VoteRefused,
    change_request_approve,
    change_request_cancel,
    change_request_reject,
    check_may_vote,
)
from experiments_api.errors import error_body
from experiments_api.mixins import BodylessActionsMixin
from experiments_api.serializers import validated_body

CANNOT_CANCEL = "You cannot cancel this change request"
NEVER_APPLICABLE_CODE = "change_request_not_applicable"
ADMIN_REQUIRED = "Your organization access level is insufficient."


class CanCancel(permissions.BasePermission):
    def has_object_permission(self, request: Request, view: APIView, change_request: ChangeRequest) -> bool:
        if not change_request.can_be_canceled_by(request.user.id):
            raise exceptions.PermissionDenied(CANNOT_CANCEL)
        return True


class ChangeRequestFilter(django_filters.FilterSet):
    state = django_filters.CharFilter(method="filter_state", help_text="Comma-separated states")
    action_key = django_filters.CharFilter()
    requester = django_filters.NumberFilter(method="filter_requester")
    resource_type = django_filters.CharFilter()
    resource_id = django_filters.CharFilter()

    class Meta:
        model = ChangeRequest
        fields = ["state", "action_key", "requester", "resource_type", "resource_id"]

    def filter_requester(self, queryset: QuerySet, name: str, value) -> QuerySet:
        if value != int(value) or not 0 < value < 2**63:
            return queryset.none()
        return queryset.filter(created_by_id=int(value))

    def filter_state(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(state__in=[item.strip() for item in value.split(",") if item.strip()])


ACTION_RESPONSE = OpenApiTypes.OBJECT


class ChangeRequestViewSet(ProjectScopedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """Change requests: gated changes waiting for, or done with, approval."""

    scope_object = "approvals"
    scope_object_write_actions = ("approve", "reject", "cancel")
    serializer_class = ChangeRequestSerializer
    queryset = ChangeRequest.objects.all()
    filterset_class = ChangeRequestFilter

    def filter_queryset_for_action(self, queryset: QuerySet) -> QuerySet:
        return (
            queryset.select_related("created_by", "applied_by")
            .prefetch_related("approvals__created_by")
            .order_by("-created_at")
        )

    def get_permissions(self) -> list[permissions.BasePermission]:
        extra = [CanCancel()] if self.action == "cancel" else []
        return [*super().get_permissions(), *extra]

    def outcome_response(self, outcome: Outcome) -> Response:
        body = {
            "status": outcome.status,
            "message": outcome.message,
            "change_request": ChangeRequestSerializer(
                ChangeRequest.objects.prefetch_related("approvals__created_by").get(
                    pk=outcome.change_request.pk
                ),
                context=self.get_serializer_context(),
            ).data,
        }
        if outcome.result is not None:
            body["result"] = outcome.result
        return Response(body)

    def act(self, service: Callable[..., Outcome], *, vote: bool) -> Response:
        """Approve, reject or cancel with the body's reason: a vote the approver rule refuses is a
        403 (before the body is read, as PostHog's permission check runs first), a request that can
        never be applied a 400 in the error envelope (PostHog has no such requests), any other
        refusal PostHog's `{"error": ...}` 400."""
        change_request = self.get_object()
        try:
            if vote:
                check_may_vote(change_request, self.request.user)
            reason = validated_body(self.request, ChangeRequestActionBodySerializer).get("reason") or ""
            outcome = service(change_request=change_request, user=self.request.user, reason=reason)
        except VoteRefused as error:
            raise exceptions.PermissionDenied(str(error)) from error
        except NeverApplicable as error:
            return Response(
                error_body("invalid_request", NEVER_APPLICABLE_CODE, str(error)),
                status=status.HTTP_400_BAD_REQUEST,
            )
        except ChangeRequestActionError as error:
            return Response({"error": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        return self.outcome_response(outcome)

    @extend_schema(request=ChangeRequestActionBodySerializer, responses=ACTION_RESPONSE)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, *args, **kwargs) -> Response:
        """Approve; at the quorum the change is applied as the requester."""
        return self.act(change_request_approve, vote=True)

    @extend_schema(request=ChangeRequestActionBodySerializer, responses=ACTION_RESPONSE)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, *args, **kwargs) -> Response:
        """Reject (a reason is required); one rejection rejects the request."""
        return self.act(change_request_reject, vote=True)

    @extend_schema(request=ChangeRequestActionBodySerializer, responses=ACTION_RESPONSE)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, *args, **kwargs) -> Response:
        """The requester withdraws the request (with the default reason when it gives none)."""
        return self.act(change_request_cancel, vote=False)


class AdminWritePermission(permissions.BasePermission):
    """Organization admins and owners change policies; every member reads them."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        if view.membership_level < OrganizationMembership.Level.ADMIN:
            raise exceptions.PermissionDenied(ADMIN_REQUIRED)
        return True


class ApprovalPolicyFilter(django_filters.FilterSet):
    action_key = django_filters.CharFilter()
    enabled = django_filters.BooleanFilter()

    class Meta:
        model = ApprovalPolicy
        fields = ["action_key", "enabled"]


class ApprovalPolicyViewSet(BodylessActionsMixin, ProjectScopedViewSetMixin, viewsets.ModelViewSet):
    """Approval policies of this project, and the organization-wide ones that also apply to it.
    DELETE is a hard delete."""

    scope_object = "approvals"
    serializer_class = ApprovalPolicySerializer
    queryset = ApprovalPolicy.objects.all()
    filterset_class = ApprovalPolicyFilter
    permission_classes = [permissions.IsAuthenticated, APIScopePermission, AdminWritePermission]

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return ApprovalPolicy.objects.none()
        return (
            ApprovalPolicy.objects.filter(organization_id=self.project.organization_id)
            .filter(Q(project=self.project) | Q(project__isnull=True))
            .select_related("created_by")
            .order_by("-created_at")
        )

    def perform_create(self, serializer: ApprovalPolicySerializer) -> None:
        serializer.save(
            organization_id=self.project.organization_id, project=self.project, created_by=self.request.user
        )

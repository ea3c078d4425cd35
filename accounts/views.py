from collections.abc import Callable

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import PersonalAPIKeyAuthentication
from accounts.fast_reads import key_call, rate_limit_refusal
from accounts.identity import identity_memo
from accounts.models import OrganizationMembership, PersonalAPIKey, Project, User
from accounts.permissions import UNSUPPORTED_MESSAGE
from accounts.representations import me
from accounts.scopes import scopes_grant
from accounts.scoping import CURRENT, resolve_project_for_user
from accounts.serializers import MeSerializer, PersonalAPIKeySerializer, ProjectSerializer
from accounts.services import personal_api_key_create, personal_api_key_roll
from experiments_api.middleware import early_answer_view
from experiments_api.mixins import BodylessActionsMixin


class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Projects (PostHog's teams) of the organizations the user belongs to."""

    scope_object = "project"
    required_scopes = None
    serializer_class = ProjectSerializer
    queryset = Project.objects.all()
    lookup_value_regex = r"[^/]+"

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return Project.objects.none()
        queryset = (
            Project.objects.filter(organization__memberships__user=self.request.user)
            .select_related("organization")
            .order_by("id")
        )
        key = self.request.auth
        if isinstance(key, PersonalAPIKey) and key.scoped_organizations:
            queryset = queryset.filter(organization_id__in=key.scoped_organizations)
        return queryset

    def scoping_project(self) -> Project | None:
        if self.action != "retrieve":
            return None
        return self.get_object()

    def get_object(self) -> Project:
        if not hasattr(self, "_project"):
            self._project = resolve_project_for_user(self.request.user, self.kwargs["pk"])
        return self._project


class UserViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The authenticated user. Only `@me` is addressable."""

    scope_object = "user"
    required_scopes = None
    serializer_class = MeSerializer
    queryset = User.objects.all()
    lookup_value_regex = "@me"

    def get_object(self) -> User:
        return user_for_me(self.request.user.pk)


def user_for_me(user_id: int) -> User:
    """The user with what `@me` shows of them: current project and organization, memberships."""
    return (
        User.objects.select_related("current_project__organization")
        .prefetch_related(
            Prefetch(
                "organization_memberships",
                queryset=OrganizationMembership.objects.select_related("organization"),
            )
        )
        .get(pk=user_id)
    )


ME_SCOPE = "user:read"
ME_MEMO_KEY = "me-body"
# What the DRF view adds to every answer of `@me`.
ME_HEADERS = {"Vary": "Accept", "Allow": "GET, HEAD, OPTIONS"}


def me_view(through_drf: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """`GET /api/users/@me/` answered without DRF's dispatch for the common call (see
    `accounts.fast_reads`) from the body kept with the key's cached identity, so valid exactly as
    long as the identity version. Calls with a query string, and all the others, are handed to
    `through_drf`, the router's view, unchanged."""
    return early_answer_view(_me_fast_answer, through_drf)


def _me_fast_answer(request: HttpRequest, *args, **kwargs) -> HttpResponse | None:
    call = None if request.META.get("QUERY_STRING") else key_call(request, None)
    if call is None or not scopes_grant(call.key.effective_scopes, ME_SCOPE):
        return None
    key = call.key
    refused = rate_limit_refusal(key, UserViewSet.throttle_classes, ME_HEADERS)
    if refused is not None:
        return refused
    PersonalAPIKeyAuthentication.touch(key)
    memo = identity_memo(call.digest)
    body = memo.get(ME_MEMO_KEY) if memo is not None else None
    if body is None:
        body = JSONRenderer().render(me(user_for_me(key.user_id), key))
        if memo is not None:
            memo[ME_MEMO_KEY] = body
    response = HttpResponse(body, content_type="application/json")
    for name, value in ME_HEADERS.items():
        response[name] = value
    return response


class PersonalAPIKeySelfAccess(permissions.BasePermission):
    """With key authentication, a key may only read itself; all else needs a signed-in session."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if isinstance(request.auth, PersonalAPIKey) and view.action != "retrieve":
            raise exceptions.PermissionDenied(UNSUPPORTED_MESSAGE)
        return True

    def has_object_permission(self, request: Request, view: APIView, obj: PersonalAPIKey) -> bool:
        if isinstance(request.auth, PersonalAPIKey) and obj.pk != request.auth.pk:
            raise exceptions.PermissionDenied(UNSUPPORTED_MESSAGE)
        return True


class PersonalAPIKeyViewSet(BodylessActionsMixin, viewsets.ModelViewSet):
    """The caller's own personal API keys. Hard delete; the list is a plain array, as PostHog's."""

    scope_object = "INTERNAL"
    required_scopes = None
    serializer_class = PersonalAPIKeySerializer
    permission_classes = [permissions.IsAuthenticated, PersonalAPIKeySelfAccess]
    pagination_class = None
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = r"[^/]+"

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return PersonalAPIKey.objects.none()
        return PersonalAPIKey.objects.filter(user=self.request.user).order_by("-created_at")

    def get_object(self) -> PersonalAPIKey:
        if self.kwargs.get("pk") == CURRENT:
            if not isinstance(self.request.auth, PersonalAPIKey):
                raise exceptions.NotFound()
            key = self.request.auth
            self.check_object_permissions(self.request, key)
            return key
        return super().get_object()

    def perform_create(self, serializer: PersonalAPIKeySerializer) -> None:
        issued = personal_api_key_create(
            user=self.request.user,
            label=serializer.validated_data["label"],
            scopes=serializer.validated_data["scopes"],
            scoped_teams=serializer.validated_data.get("scoped_teams"),
            scoped_organizations=serializer.validated_data.get("scoped_organizations"),
        )
        serializer.instance = issued.key
        serializer.context["raw_secret"] = issued.secret

    @extend_schema(request=None, responses=PersonalAPIKeySerializer)
    @action(detail=True, methods=["post"])
    def roll(self, request: Request, pk: str | None = None) -> Response:
        issued = personal_api_key_roll(key=self.get_object())
        serializer = self.get_serializer(
            issued.key, context={"request": request, "raw_secret": issued.secret}
        )
        return Response(serializer.data, status=status.HTTP_200_OK)

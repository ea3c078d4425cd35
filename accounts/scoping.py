"""The base every project-scoped ViewSet stands on.

It resolves `/api/projects/{project_id}/` (an integer or `@current`) to a project the user belongs
to — anything else is 404 "Project not found." — and filters every queryset to that project, so a
view can never hand out another project's rows by forgetting a filter.
"""

from functools import cached_property

from django.db.models import F, QuerySet
from rest_framework import exceptions, viewsets
from rest_framework.request import Request

from accounts.identity import project_id_from_url
from accounts.models import OrganizationMembership, PersonalAPIKey, Project

PROJECT_NOT_FOUND = "Project not found."
CURRENT = "@current"


def resolve_project_for_user(user, raw_project_id: str) -> Project:
    """The project behind `raw_project_id` with the user's membership level and the project's data
    version (read in this one statement, before any of the data it versions), or 404."""
    if not user or not user.is_authenticated:
        raise exceptions.NotAuthenticated()
    if raw_project_id == CURRENT:
        project_id = user.current_project_id
        if project_id is None:
            raise exceptions.NotFound(PROJECT_NOT_FOUND)
    else:
        project_id = project_id_from_url(raw_project_id)
        if project_id is None:
            raise exceptions.NotFound(PROJECT_NOT_FOUND)
    project = (
        Project.objects.select_related("organization")
        .filter(pk=project_id, organization__memberships__user_id=user.id)
        .annotate(
            membership_level=F("organization__memberships__level"),
            data_version=F("flag_definitions_version__data_version"),
        )
        .first()
    )
    if project is None:
        raise exceptions.NotFound(PROJECT_NOT_FOUND)
    return project


class ProjectScopedViewSetMixin:
    """Mixin for ViewSets routed under `/api/projects/{project_id}/`.

    Subclasses set `scope_object` and may set `scope_object_read_actions` /
    `scope_object_write_actions`; custom actions pass `required_scopes=[...]` to `@action`.
    Subclasses narrow the queryset in `filter_queryset_for_action` instead of overriding
    `get_queryset`, which always applies the project filter last.
    """

    scope_object: str
    required_scopes: list[str] | None = None
    project_lookup_field = "project"
    request: Request

    @cached_property
    def project(self) -> Project:
        raw_project_id = self.kwargs.get("project_id")
        access = getattr(self.request, "project_access", None)
        if (
            access is not None
            and access.project_id == project_id_from_url(raw_project_id)
            and isinstance(self.request.auth, PersonalAPIKey)
        ):
            if access.project is None:
                raise exceptions.NotFound(PROJECT_NOT_FOUND)
            return access.project
        return resolve_project_for_user(self.request.user, raw_project_id)

    @property
    def organization(self):
        return self.project.organization

    @property
    def membership_level(self) -> int:
        return getattr(self.project, "membership_level", OrganizationMembership.Level.MEMBER)

    def scoping_project(self) -> Project:
        return self.project

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):
            return queryset.none()
        queryset = self.filter_queryset_for_action(queryset)
        return queryset.filter(**{self.project_lookup_field: self.project})

    def filter_queryset_for_action(self, queryset: QuerySet) -> QuerySet:
        return queryset

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        if "project_id" in self.kwargs and not getattr(self, "swagger_fake_view", False):
            context["project"] = self.project
            context["membership_level"] = self.membership_level
        return context

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        # Session users skip the key-scope permission, which is where keys resolve the project;
        # resolving here gives everyone the same 404 for a project they cannot reach.
        _ = self.project


class ProjectScopedGenericViewSet(ProjectScopedViewSetMixin, viewsets.GenericViewSet):
    pass

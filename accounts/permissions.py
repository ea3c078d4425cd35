"""Scope enforcement for personal API keys, as PostHog's `APIScopePermission`.

Session-authenticated requests skip scope checks. For a key, the required scopes come from the
action's `required_scopes`, else from the view's `scope_object` and whether the action reads or
writes. An action that requires nothing cannot be reached with a key at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from accounts.models import PersonalAPIKey
from accounts.scopes import scopes_grant

if TYPE_CHECKING:
    from rest_framework.views import APIView

UNSUPPORTED_MESSAGE = "This action does not support Personal API Key access"
SCOPED_PROJECTS_ONLY_MESSAGE = "API keys with scoped projects are only supported on project-based endpoints."

DEFAULT_READ_ACTIONS = ("list", "retrieve")
DEFAULT_WRITE_ACTIONS = ("create", "update", "partial_update", "patch", "destroy")


def required_scopes_for(request: Request, view: APIView) -> list[str]:
    explicit = getattr(view, "required_scopes", None)
    if explicit:
        return list(explicit)
    scope_object = getattr(view, "scope_object", None)
    if scope_object is None or scope_object == "INTERNAL":
        return []
    action = getattr(view, "action", None)
    if action is None and request.method == "PATCH":
        action = "patch"
    read_actions = getattr(view, "scope_object_read_actions", DEFAULT_READ_ACTIONS)
    write_actions = getattr(view, "scope_object_write_actions", DEFAULT_WRITE_ACTIONS)
    if action in write_actions:
        return [f"{scope_object}:write"]
    if action in read_actions or request.method == "OPTIONS":
        return [f"{scope_object}:read"]
    return []


class APIScopePermission(permissions.BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        key = request.auth
        if not isinstance(key, PersonalAPIKey):
            return True
        action_map = getattr(view, "action_map", None)
        if (
            action_map is not None
            and request.method.lower() not in action_map
            and request.method != "OPTIONS"
        ):
            # Let the view answer 405 for a method it does not have, rather than a scope error.
            return True

        required = required_scopes_for(request, view)
        if not required:
            raise exceptions.PermissionDenied(UNSUPPORTED_MESSAGE)

        if getattr(view, "scope_object", None) != "user":
            self.check_project_and_organization_scoping(key, view)

        granted = key.effective_scopes
        for scope in required:
            if not scopes_grant(granted, scope):
                raise exceptions.PermissionDenied(f"API key missing required scope '{scope}'")
        return True

    @staticmethod
    def check_project_and_organization_scoping(key: PersonalAPIKey, view: APIView) -> None:
        project = view.scoping_project() if hasattr(view, "scoping_project") else None
        if key.scoped_teams:
            if project is None:
                raise exceptions.PermissionDenied(SCOPED_PROJECTS_ONLY_MESSAGE)
            if project.id not in key.scoped_teams:
                raise exceptions.PermissionDenied(
                    f"API key does not have access to the requested project: ID {project.id}."
                )
        if key.scoped_organizations:
            organization_id = project.organization_id if project is not None else None
            if organization_id is None and hasattr(view, "scoping_organization_id"):
                organization_id = view.scoping_organization_id()
            if organization_id is not None and str(organization_id) not in key.scoped_organizations:
                raise exceptions.PermissionDenied(
                    f"API key does not have access to the requested organization: ID {organization_id}."
                )

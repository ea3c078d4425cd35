from typing import Any

from accounts.models import Organization, PersonalAPIKey, Project, User
from experiments_api.representation import api_datetime


def user_identity(user: User) -> dict[str, Any]:
    """The fields that begin both `UserBasic` and `@me`."""
    return {
        "id": user.id,
        "uuid": str(user.uuid),
        "distinct_id": user.distinct_id,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_email_verified": None,
    }


def user_basic(user: User | None) -> dict[str, Any] | None:
    """How a user appears inside other objects (PostHog's `UserBasic`)."""
    if user is None:
        return None
    return {
        **user_identity(user),
        "hedgehog_config": None,
        "role_at_organization": None,
    }


def organization_basic(organization: Organization) -> dict[str, Any]:
    return {
        "id": str(organization.id),
        "name": organization.name,
        "created_at": api_datetime(organization.created_at),
    }


def project_basic(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "organization": str(project.organization_id),
        "name": project.name,
        "api_token": project.api_token,
        "timezone": project.timezone,
    }


def me(user: User, key: PersonalAPIKey | None = None) -> dict[str, Any]:
    """`GET /api/users/@me/`: the user, their current project and organization, and every
    organization they belong to (memberships prefetched with their organizations). Through a key
    scoped to projects or organizations, only what the key may see: a current project outside its
    scope is shown as none."""
    project = user.current_project
    allowed_organizations = key.allowed_organization_ids() if key is not None else None
    if project is not None and key is not None and not key.allows_project(project):
        project = None
    memberships = [
        membership
        for membership in user.organization_memberships.all()
        if allowed_organizations is None or str(membership.organization_id) in allowed_organizations
    ]
    return {
        **user_identity(user),
        "is_staff": user.is_staff,
        "date_joined": api_datetime(user.date_joined),
        "team": project_basic(project) if project is not None else None,
        "organization": organization_basic(project.organization) if project is not None else None,
        "organizations": [
            {
                "id": str(membership.organization.id),
                "name": membership.organization.name,
                "membership_level": membership.level,
            }
            for membership in memberships
        ],
    }

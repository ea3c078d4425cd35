"""PostHog's `user_access_level` without role-based access control: the creator of an object and
organization admins and owners manage it; every other member edits it."""

from accounts.models import OrganizationMembership

MANAGER = "manager"
EDITOR = "editor"


def user_access_level(*, user_id: int | None, membership_level: int, created_by_id: int | None) -> str:
    if membership_level >= OrganizationMembership.Level.ADMIN:
        return MANAGER
    if created_by_id is not None and created_by_id == user_id:
        return MANAGER
    return EDITOR

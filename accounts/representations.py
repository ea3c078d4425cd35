from typing import Any

from accounts.models import User


def user_basic(user: User | None) -> dict[str, Any] | None:
    """How a user appears inside other objects (PostHog's `UserBasic`)."""
    if user is None:
        return None
    return {
        "id": user.id,
        "uuid": str(user.uuid),
        "distinct_id": user.distinct_id,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_email_verified": None,
        "hedgehog_config": None,
        "role_at_organization": None,
    }

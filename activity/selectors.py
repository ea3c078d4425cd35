from typing import Any

from django.db.models import QuerySet

from accounts.models import Project
from activity.models import ActivityLog


def item_activity(*, project: Project, scope: str, item_id: Any) -> QuerySet[ActivityLog]:
    """One resource's activity (`/<resource>/<id>/activity/`), newest first, with its users."""
    return (
        ActivityLog.objects.filter(project=project, scope=scope, item_id=str(item_id))
        .select_related("user")
        .order_by("-created_at", "-id")
    )

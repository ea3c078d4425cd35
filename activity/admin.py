from django.contrib import admin

from activity.models import ActivityLog
from experiments_api.admin import ServiceWrittenModelAdmin


@admin.register(ActivityLog)
class ActivityLogAdmin(ServiceWrittenModelAdmin):
    """The activity log is an audit trail: read-only."""

    list_display = ["created_at", "scope", "item_id", "activity", "user", "project"]
    list_filter = ["scope", "activity", "project"]
    search_fields = ["item_id", "activity", "user__email"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

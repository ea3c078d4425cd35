from django.contrib import admin

from activity.models import ActivityLog


@admin.register(ActivityLog)
class ActivityLogAdmin(admin.ModelAdmin):
    """The activity log is an audit trail: read-only."""

    list_display = ["created_at", "scope", "item_id", "activity", "user", "project"]
    list_filter = ["scope", "activity", "project"]
    search_fields = ["item_id", "activity", "user__email"]
    readonly_fields = [field.name for field in ActivityLog._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

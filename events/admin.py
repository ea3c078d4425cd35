from django.contrib import admin
from django.http import HttpRequest

from events.models import Event, GroupTypeMapping
from experiments_api.admin import ModelAdmin


@admin.register(Event)
class EventAdmin(ModelAdmin):
    """Read-only: events are append-only exposure data."""

    list_display = ["event", "distinct_id", "project", "timestamp", "received_at"]
    list_filter = ["event", "project"]
    search_fields = ["event", "distinct_id", "uuid"]
    date_hierarchy = "timestamp"
    readonly_fields = ["uuid", "project", "event", "distinct_id", "timestamp", "properties", "received_at"]
    list_select_related = ["project"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False


@admin.register(GroupTypeMapping)
class GroupTypeMappingAdmin(ModelAdmin):
    list_display = ["group_type", "group_type_index", "project", "created_at"]
    list_filter = ["project"]
    search_fields = ["group_type", "name_singular", "name_plural"]
    fields = ["project", "group_type", "group_type_index", "name_singular", "name_plural"]

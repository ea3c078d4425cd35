from django.contrib import admin

from holdouts.models import ExperimentHoldout


@admin.register(ExperimentHoldout)
class ExperimentHoldoutAdmin(admin.ModelAdmin):
    """Read-only: holdout changes rewrite linked flags and may need approval, so they go through the API."""

    list_display = ["name", "project", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["name", "description"]
    readonly_fields = [field.name for field in ExperimentHoldout._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

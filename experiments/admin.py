from django.contrib import admin

from experiments.models import Experiment, ExperimentSavedMetric, ExperimentToSavedMetric


class SavedMetricLinkInline(admin.TabularInline):
    model = ExperimentToSavedMetric
    extra = 0
    readonly_fields = ["saved_metric", "metadata", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    """Experiments are changed through the API or the lifecycle actions below, never by editing
    fields here, so every change keeps the flag in step and is logged."""

    list_display = [
        "name",
        "project",
        "status",
        "feature_flag",
        "archived",
        "deleted",
        "start_date",
        "end_date",
    ]
    list_filter = ["status", "archived", "deleted", "type", "project"]
    search_fields = ["name", "description", "feature_flag__key"]
    readonly_fields = [field.name for field in Experiment._meta.fields]
    inlines = [SavedMetricLinkInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ExperimentSavedMetric)
class ExperimentSavedMetricAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]

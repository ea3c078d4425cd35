from django.contrib import admin

from experiments_api.admin import ModelAdmin, ServiceWrittenModelAdmin
from flags.models import Cohort, FeatureFlag


@admin.register(FeatureFlag)
class FeatureFlagAdmin(ServiceWrittenModelAdmin):
    """Read-mostly: flag changes must go through the API so validation, versioning, activity and
    approvals apply. Operators can inspect every field here."""

    list_display = ["key", "project", "active", "deleted", "version", "creation_context", "updated_at"]
    list_filter = ["active", "deleted", "creation_context", "project"]
    search_fields = ["key", "name"]


@admin.register(Cohort)
class CohortAdmin(ModelAdmin):
    list_display = ["name", "project", "is_static", "is_calculating", "deleted", "created_at"]
    list_filter = ["is_static", "deleted", "project"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]

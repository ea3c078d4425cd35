from django.contrib import admin

from experiments_api.admin import ServiceWrittenModelAdmin
from holdouts.models import ExperimentHoldout


@admin.register(ExperimentHoldout)
class ExperimentHoldoutAdmin(ServiceWrittenModelAdmin):
    """Read-only: holdout changes rewrite linked flags and may need approval, so they go through the API."""

    list_display = ["name", "project", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["name", "description"]

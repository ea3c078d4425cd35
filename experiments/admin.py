from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework.exceptions import ValidationError

from approvals.gate import ApprovalRequired, PolicyConflict
from experiments.lifecycle import TRANSITION_FUNCTIONS, Transition
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
    actions = ["launch", "pause", "resume", "end", "reset", "archive"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def run_transition(self, request: HttpRequest, queryset: QuerySet, transition: Transition) -> None:
        """Apply one lifecycle transition to each selected experiment through the lifecycle module,
        reporting every experiment that could not make it and why."""
        transition_function: Callable[..., Experiment] = TRANSITION_FUNCTIONS[transition]
        succeeded = 0
        for experiment in queryset.order_by("id"):
            try:
                transition_function(experiment=experiment, user=request.user)
            except ValidationError as error:
                reason = (
                    " ".join(str(item) for item in error.detail)
                    if isinstance(error.detail, list)
                    else error.detail
                )
                self.message_user(request, f"{experiment.name} (#{experiment.id}): {reason}", messages.ERROR)
            except ApprovalRequired as required:
                self.message_user(
                    request,
                    f"{experiment.name} (#{experiment.id}): {required.message} "
                    f"(change request {required.change_request.id})",
                    messages.WARNING,
                )
            except PolicyConflict as conflict:
                self.message_user(
                    request, f"{experiment.name} (#{experiment.id}): {conflict}", messages.ERROR
                )
            else:
                succeeded += 1
        if succeeded:
            self.message_user(
                request, f"{transition.label}: {succeeded} experiment(s) done.", messages.SUCCESS
            )

    @admin.action(description="Launch selected draft experiments")
    def launch(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.run_transition(request, queryset, Transition.LAUNCH)

    @admin.action(description="Pause selected running experiments")
    def pause(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.run_transition(request, queryset, Transition.PAUSE)

    @admin.action(description="Resume selected paused experiments")
    def resume(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.run_transition(request, queryset, Transition.RESUME)

    @admin.action(description="End selected running experiments")
    def end(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.run_transition(request, queryset, Transition.END)

    @admin.action(description="Reset selected experiments to draft")
    def reset(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.run_transition(request, queryset, Transition.RESET)

    @admin.action(description="Archive selected ended experiments")
    def archive(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.run_transition(request, queryset, Transition.ARCHIVE)


@admin.register(ExperimentSavedMetric)
class ExperimentSavedMetricAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]

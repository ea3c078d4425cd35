from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework.exceptions import ValidationError

from approvals.gate import ApprovalRequired, PolicyConflict
from experiments.lifecycle import TRANSITION_FUNCTIONS, ExperimentStatus, Transition, experiment_status
from experiments.models import Experiment, ExperimentSavedMetric, ExperimentToSavedMetric
from experiments.selectors import filter_by_status


class SavedMetricLinkInline(admin.TabularInline):
    model = ExperimentToSavedMetric
    extra = 0
    readonly_fields = ["saved_metric", "metadata", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ExperimentStatusFilter(admin.SimpleListFilter):
    """The status a client sees (paused included), filtered by the same selector as the API."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(ExperimentStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return filter_by_status(queryset, self.value()) if self.value() else queryset


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    """Experiments are changed through the API or the lifecycle actions below, never by editing
    fields here, so every change keeps the flag in step and is logged."""

    list_display = [
        "name",
        "project",
        "derived_status",
        "feature_flag",
        "archived",
        "deleted",
        "start_date",
        "end_date",
    ]
    list_filter = [ExperimentStatusFilter, "archived", "deleted", "type", "project"]
    list_select_related = ["project", "feature_flag"]
    search_fields = ["name", "description", "feature_flag__key"]
    readonly_fields = [field.name for field in Experiment._meta.fields]
    inlines = [SavedMetricLinkInline]
    actions = ["launch", "pause", "resume", "end", "reset", "archive", "unarchive"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="status")
    def derived_status(self, experiment: Experiment) -> str:
        return experiment_status(experiment).label

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

    @admin.action(description="Unarchive selected experiments")
    def unarchive(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.run_transition(request, queryset, Transition.UNARCHIVE)


@admin.register(ExperimentSavedMetric)
class ExperimentSavedMetricAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from rest_framework.exceptions import ValidationError

from approvals.gate import ApprovalRequired, PolicyConflict
from experiments.lifecycle import (
    TRANSITION_FUNCTIONS,
    ExperimentStatus,
    Transition,
    experiment_ship_variant,
    experiment_status,
)
from experiments.models import Experiment, ExperimentSavedMetric, ExperimentToSavedMetric
from experiments.selectors import filter_by_status
from experiments_api.admin import ModelAdmin, ServiceWrittenModelAdmin


class SavedMetricLinkInline(admin.TabularInline):
    model = ExperimentToSavedMetric
    extra = 0
    readonly_fields = ["saved_metric", "metadata", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ShipVariantForm(forms.Form):
    """What `POST …/ship_variant/` takes, for one experiment, with its flag's variants to choose from."""

    variant_key = forms.ChoiceField(label="Variant to ship")
    release_to_everyone = forms.BooleanField(
        required=False, help_text="Also roll the flag out to 100% of users, not only the variant."
    )
    conclusion = forms.ChoiceField(
        required=False, choices=[("", "(unchanged)"), *Experiment.Conclusion.choices]
    )
    conclusion_comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, variant_keys: list[Any], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Only text keys can be shipped; a flag edited by hand may hold others, and a list among
        # the choices would read as a group of choices.
        self.fields["variant_key"].choices = [(key, key) for key in variant_keys if isinstance(key, str)]


class ExperimentStatusFilter(admin.SimpleListFilter):
    """The status a client sees (paused included), filtered by the same selector as the API."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(ExperimentStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return filter_by_status(queryset, self.value()) if self.value() else queryset


@admin.register(Experiment)
class ExperimentAdmin(ServiceWrittenModelAdmin):
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
    inlines = [SavedMetricLinkInline]
    actions = ["launch", "pause", "resume", "end", "ship_variant", "reset", "archive", "unarchive"]

    @admin.display(description="status")
    def derived_status(self, experiment: Experiment) -> str:
        return experiment_status(experiment).label

    def run_transition(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        transition: Transition,
        transition_function: Callable[..., Experiment] | None = None,
    ) -> None:
        """Apply one lifecycle transition to each selected experiment through the lifecycle module,
        reporting every experiment that could not make it and why."""
        transition_function = transition_function or TRANSITION_FUNCTIONS[transition]
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

    @admin.action(description="Ship a variant of the selected experiment")
    def ship_variant(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        """Asks which variant to ship (an intermediate page), then ships it like the API does."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one experiment to ship a variant of.", messages.ERROR)
            return None
        experiment = queryset.select_related("feature_flag").get()
        variant_keys = experiment.feature_flag.variant_keys
        form = ShipVariantForm(request.POST if "apply" in request.POST else None, variant_keys=variant_keys)
        if not form.is_valid():
            return TemplateResponse(
                request,
                "admin/experiments/ship_variant.html",
                {
                    **self.admin_site.each_context(request),
                    "title": f"Ship a variant of {experiment.name}",
                    "opts": self.model._meta,
                    "experiment": experiment,
                    "form": form,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                },
            )
        choice = form.cleaned_data

        def ship(*, experiment: Experiment, user) -> Experiment:
            return experiment_ship_variant(
                experiment=experiment,
                user=user,
                variant_key=choice["variant_key"],
                release_to_everyone=choice["release_to_everyone"],
                conclusion=choice["conclusion"] or None,
                conclusion_given=bool(choice["conclusion"]),
                conclusion_comment=choice["conclusion_comment"] or None,
                conclusion_comment_given=bool(choice["conclusion_comment"]),
            )

        self.run_transition(request, queryset, Transition.SHIP_VARIANT, ship)
        return None

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
class ExperimentSavedMetricAdmin(ModelAdmin):
    list_display = ["name", "project", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]

"""The experiment's admin page with its results: the experiments app's admin, extended here
because results read experiments and never the other way round."""

from django.apps import apps
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from rest_framework.exceptions import ValidationError

from experiments.admin import ExperimentAdmin
from experiments.models import Experiment, ExperimentMetricsRecalculation
from experiments.recalculations import metrics_recalculation_request
from experiments_api.admin import ModelAdmin
from results.picture import experiment_results_context

admin.site.unregister(Experiment)


@admin.register(Experiment)
class ExperimentWithResultsAdmin(ExperimentAdmin):
    readonly_fields = ["results"]
    actions = [*ExperimentAdmin.actions, "recalculate_results"]

    @admin.display(description="Results")
    def results(self, experiment: Experiment) -> SafeString:
        # An autoescaped template: what it renders is already safe.
        return render_to_string(
            "admin/results/experiment_results.html", experiment_results_context(experiment)
        )

    @admin.action(description="Recalculate results of selected experiments")
    def recalculate_results(self, request: HttpRequest, queryset: QuerySet) -> None:
        queued = 0
        for experiment in queryset.order_by("id"):
            try:
                _, created = metrics_recalculation_request(
                    experiment=experiment,
                    trigger=ExperimentMetricsRecalculation.Trigger.MANUAL,
                    user=request.user,
                )
            except ValidationError as error:
                self.message_user(
                    request, f"{experiment.name} (#{experiment.id}): {error.detail[0]}", messages.ERROR
                )
                continue
            queued += created
        self.message_user(request, f"Recalculation queued for {queued} experiment(s).", messages.SUCCESS)


if apps.is_installed("procrastinate.contrib.django"):
    from procrastinate.contrib.django.admin import ProcrastinateJobAdmin
    from procrastinate.contrib.django.models import ProcrastinateJob

    admin.site.unregister(ProcrastinateJob)

    @admin.register(ProcrastinateJob)
    class ResultsQueueJobAdmin(ProcrastinateJobAdmin, ModelAdmin):
        """The results worker's queue, with its actions' selections checked as every admin's are."""

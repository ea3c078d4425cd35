from typing import Any

from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.versions import watch_project_data
        from approvals.actions import GatedAction, register_actions
        from experiments.flag_links import ExperimentFlagLinks
        from experiments.models import (
            Experiment,
            ExperimentMetricResult,
            ExperimentSavedMetric,
            ExperimentTimeseriesRecalculation,
            ExperimentToSavedMetric,
        )
        from flags.hooks import register_flag_experiments

        def experiment_row_project(row: Any) -> int | None:
            """The project of a row that belongs to an experiment: its experiment's."""
            if row.experiment_id is None:
                return None
            return (
                Experiment.objects.filter(pk=row.experiment_id).values_list("project_id", flat=True).first()
            )

        register_actions(
            GatedAction("experiment.launch", "experiment", "Launch an experiment"),
            GatedAction("experiment.pause", "experiment", "Pause an experiment"),
            GatedAction("experiment.resume", "experiment", "Resume an experiment"),
            GatedAction("experiment.end", "experiment", "End an experiment"),
            GatedAction("experiment.ship_variant", "experiment", "Ship an experiment variant"),
            GatedAction("experiment.reset", "experiment", "Reset an experiment to draft"),
            GatedAction("experiment.archive", "experiment", "Archive or unarchive an experiment"),
            GatedAction("experiment.update", "experiment", "Update an experiment"),
            GatedAction("experiment.delete", "experiment", "Delete an experiment"),
        )
        register_flag_experiments(ExperimentFlagLinks())
        # Linking a flag to an experiment changes the flag's `has_experiment`.
        watch_project_data(Experiment, moves_flag_definitions=True)
        watch_project_data(ExperimentSavedMetric, moves_flag_definitions=False)
        watch_project_data(ExperimentTimeseriesRecalculation, moves_flag_definitions=False)
        for linked_to_experiment in (ExperimentToSavedMetric, ExperimentMetricResult):
            watch_project_data(
                linked_to_experiment, moves_flag_definitions=False, project_of=experiment_row_project
            )

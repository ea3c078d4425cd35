from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from approvals.actions import GatedAction, register_actions
        from experiments.flag_links import ExperimentFlagLinks
        from flags.hooks import register_flag_experiments

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

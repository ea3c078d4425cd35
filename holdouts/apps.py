from django.apps import AppConfig


class HoldoutsConfig(AppConfig):
    name = "holdouts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.versions import watch_project_data
        from approvals.actions import GatedAction, register_actions
        from flags.hooks import register_holdout_lookup
        from holdouts.models import ExperimentHoldout
        from holdouts.selectors import holdout_exists

        register_actions(
            GatedAction(
                "experiment_holdout.update", "experiment_holdout", "Change a holdout's exclusion percentage"
            ),
            GatedAction("experiment_holdout.delete", "experiment_holdout", "Delete a holdout"),
        )
        register_holdout_lookup(holdout_exists)
        watch_project_data(ExperimentHoldout, moves_flag_definitions=False)

from django.apps import AppConfig


class FlagsConfig(AppConfig):
    name = "flags"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.versions import watch_project_data
        from approvals.actions import GatedAction, register_actions
        from flags.models import Cohort, FeatureFlag

        register_actions(
            GatedAction("feature_flag.enable", "feature_flag", "Enable a feature flag"),
            GatedAction("feature_flag.disable", "feature_flag", "Disable a feature flag"),
            GatedAction("feature_flag.update", "feature_flag", "Change a feature flag's rollout"),
        )
        watch_project_data(FeatureFlag, moves_flag_definitions=True)
        watch_project_data(Cohort, moves_flag_definitions=True)

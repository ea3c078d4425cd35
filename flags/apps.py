from django.apps import AppConfig


class FlagsConfig(AppConfig):
    name = "flags"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from approvals.actions import GatedAction, register_actions

        register_actions(
            GatedAction("feature_flag.enable", "feature_flag", "Enable a feature flag"),
            GatedAction("feature_flag.disable", "feature_flag", "Disable a feature flag"),
            GatedAction("feature_flag.update", "feature_flag", "Change a feature flag's rollout"),
        )

from django.apps import AppConfig


class FlagsConfig(AppConfig):
    name = "flags"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from flags.definitions import connect_invalidation_signals

        connect_invalidation_signals()

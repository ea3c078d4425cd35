from django.apps import AppConfig


class HoldoutsConfig(AppConfig):
    name = "holdouts"
    default_auto_field = "django.db.models.BigAutoField"

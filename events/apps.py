from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.group_types import register_group_type_mapping
        from accounts.versions import watch_project_data
        from events.models import GroupTypeMapping
        from events.selectors import group_type_mapping

        register_group_type_mapping(group_type_mapping)
        watch_project_data(GroupTypeMapping, moves_flag_definitions=True)

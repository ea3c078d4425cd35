"""A project's group types ("company" at index 0, ...), which group-aggregated flags bucket by.

Captured events reveal them and the events app stores them; flag delivery reads them. Those two apps
stand beside each other and import neither, so the events app registers its lookup here, in its
`AppConfig.ready()`.
"""

from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured


class _Registry:
    group_type_mapping: Callable[[int], dict[str, str]] | None = None


def register_group_type_mapping(lookup: Callable[[int], dict[str, str]]) -> None:
    """`lookup(project_id)` answers the project's group type indexes as strings ("0") mapped to
    their names ("company")."""
    _Registry.group_type_mapping = lookup


def group_type_mapping(project_id: int) -> dict[str, str]:
    if _Registry.group_type_mapping is None:
        raise ImproperlyConfigured("No installed app registered the group type mapping lookup")
    return _Registry.group_type_mapping(project_id)

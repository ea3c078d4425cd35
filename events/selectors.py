"""Reads of what captured events revealed about a project."""

from events.models import GroupTypeMapping


def group_type_mapping(project_id: int) -> dict[str, str]:
    """The project's group types by index, as SDKs receive them: `{"0": "company", ...}`."""
    return {
        str(index): group_type
        for index, group_type in GroupTypeMapping.objects.filter(project_id=project_id)
        .order_by("group_type_index")
        .values_list("group_type_index", "group_type")
    }

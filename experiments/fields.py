"""The experiment's API fields, in one table.

Each row says how one field of PostHog's experiment document is read and written. The serializers
take their field lists from it, the representations render the stored fields from it, and the
services take from it which fields a PATCH may change, which fields activity tracks, and how create
stores the plain ones. Adding a plain stored field is a model field, its migration and one row here.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from rest_framework import serializers

from experiments_api.tags import TagsField


class Write(Enum):
    NEVER = "read-only"
    ON_CREATE = "on create only"
    ALWAYS = "on create and update"


@dataclass(frozen=True)
class ExperimentField:
    """`stored`: the field is the model attribute of the same name; the representation renders it
    as stored (datetimes in the API's form) unless `computed`, and computes every field that is not
    stored. `source`: the key the serializer
    validates it into, when not the name. `default`: set for a plain field, which create stores as
    sent, or this default when absent or null (the services treat it no other way).
    `serializer_field`: builds the field that validates it, when DRF's default for the model field
    would not."""

    name: str
    write: Write
    in_list: bool
    stored: bool = True
    computed: bool = False
    source: str | None = None
    default: Callable[[], Any] | None = None
    serializer_field: Callable[[], serializers.Field] | None = None

    @property
    def key(self) -> str:
        return self.source or self.name

    @property
    def rendered_as_stored(self) -> bool:
        return self.stored and not self.computed


def null() -> None:
    return None


TAGS_HELP = "Tag names (trimmed, lowercased)."
R, C, W = Write.NEVER, Write.ON_CREATE, Write.ALWAYS
EXPERIMENT_FIELDS: tuple[ExperimentField, ...] = (
    ExperimentField("id", R, in_list=True),
    ExperimentField("name", W, in_list=True),
    ExperimentField("description", W, in_list=True, default=str),
    ExperimentField("start_date", W, in_list=True),
    ExperimentField("end_date", W, in_list=True, default=null),
    ExperimentField("feature_flag_key", C, in_list=True, stored=False),
    ExperimentField("feature_flag", R, in_list=True, stored=False),
    ExperimentField("holdout", R, in_list=True, stored=False),
    ExperimentField("holdout_id", W, in_list=False, source="holdout"),
    ExperimentField("exposure_cohort", R, in_list=True, stored=False),
    ExperimentField("parameters", W, in_list=True, computed=True),
    ExperimentField("running_time_calculation", W, in_list=True, default=dict),
    ExperimentField("excluded_variants", W, in_list=True),
    ExperimentField("secondary_metrics", W, in_list=False, default=list),
    ExperimentField("saved_metrics", R, in_list=True, stored=False),
    ExperimentField("saved_metrics_ids", W, in_list=True, stored=False),
    ExperimentField("filters", W, in_list=False, default=dict),
    ExperimentField("archived", W, in_list=True, default=bool),
    ExperimentField("deleted", W, in_list=True, default=bool),
    ExperimentField("created_by", R, in_list=True, stored=False),
    ExperimentField("created_at", R, in_list=True),
    ExperimentField("updated_at", R, in_list=True),
    ExperimentField("type", C, in_list=True),
    ExperimentField("exposure_criteria", W, in_list=False),
    ExperimentField("metrics", W, in_list=False),
    ExperimentField("metrics_secondary", W, in_list=False),
    ExperimentField("stats_config", W, in_list=False),
    # PostHog's create passes None when it is not given, so a new row holds null, not the model's {}.
    ExperimentField("scheduling_config", W, in_list=False, default=null),
    ExperimentField("conclusion", W, in_list=True, default=null),
    ExperimentField("conclusion_comment", W, in_list=True, default=null),
    ExperimentField(
        "tags", W, in_list=True, default=list, serializer_field=lambda: TagsField(help_text=TAGS_HELP)
    ),
    ExperimentField("primary_metrics_ordered_uuids", W, in_list=False),
    ExperimentField("secondary_metrics_ordered_uuids", W, in_list=False),
    ExperimentField("only_count_matured_users", W, in_list=False),
    ExperimentField("exposure_preaggregation_enabled", W, in_list=False, default=bool),
    ExperimentField("status", R, in_list=True, stored=False),
    ExperimentField("is_legacy", R, in_list=True, stored=False),
    ExperimentField("user_access_level", R, in_list=True, stored=False),
)

DETAIL_FIELDS = tuple(field.name for field in EXPERIMENT_FIELDS)
LIST_FIELDS = tuple(field.name for field in EXPERIMENT_FIELDS if field.in_list)
READ_ONLY_FIELDS = tuple(field.name for field in EXPERIMENT_FIELDS if field.write is Write.NEVER)
# What a PATCH may change, as the serializer validates it.
UPDATABLE_FIELDS = frozenset(field.key for field in EXPERIMENT_FIELDS if field.write is Write.ALWAYS)
# Stored fields a client writes: their before/after goes into activity.
TRACKED_FIELDS = tuple(
    field.name for field in EXPERIMENT_FIELDS if field.stored and field.write is not Write.NEVER
)
DECLARED_SERIALIZER_FIELDS = {
    field.name: field.serializer_field for field in EXPERIMENT_FIELDS if field.serializer_field is not None
}
PLAIN_FIELDS = {field.name: field for field in EXPERIMENT_FIELDS if field.default is not None}
# The fields the representations render as stored, in the list and only in the detail.
AS_STORED_IN_LIST = tuple(
    field.name for field in EXPERIMENT_FIELDS if field.in_list and field.rendered_as_stored
)
AS_STORED_IN_DETAIL_ONLY = tuple(
    field.name for field in EXPERIMENT_FIELDS if not field.in_list and field.rendered_as_stored
)


def plain_field_values(sent: dict[str, Any]) -> dict[str, Any]:
    """The plain fields as create stores them: each sent value, or its default when absent or
    null. Raises TypeError for a name that is not a plain field."""
    unknown = set(sent) - set(PLAIN_FIELDS)
    if unknown:
        raise TypeError(f"Not plain experiment fields: {sorted(unknown)}")
    return {
        name: sent[name] if sent.get(name) is not None else field.default()
        for name, field in PLAIN_FIELDS.items()
    }

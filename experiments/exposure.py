"""Exposure cohorts: the cohort of people who saw an experiment, defined as PostHog defines it
(people who performed the exposure event since the experiment started). This server stores the
definition; it does not compute membership."""

from typing import Any

from django.db import transaction
from rest_framework.exceptions import ValidationError

from accounts.models import User
from activity.services import activity_log_record
from experiments.lifecycle import EXPERIMENT_ACTIVITY_SCOPE
from experiments.locking import lock_experiment_and_flag
from experiments.models import Experiment
from flags.models import Cohort

NO_START_DATE = "Experiment does not have a start date"
ALREADY_HAS_COHORT = "Experiment already has an exposure cohort"
INVALID_ACTION_ID = "Invalid action ID"
EXPOSURE_PROPERTY_TYPES = ("event", "feature", "element", "hogql")
COHORT_NAME_TEMPLATE = 'Users exposed to experiment "{}"'
COHORT_NAME_MAX_LENGTH = Cohort._meta.get_field("name").max_length


def flatten_properties(properties: Any) -> list[dict[str, Any]]:
    """Property filters as a flat list, whether given as a list or a nested `{type, values}` group."""
    if isinstance(properties, list):
        flat: list[dict[str, Any]] = []
        for item in properties:
            flat.extend(flatten_properties(item))
        return flat
    if isinstance(properties, dict):
        if "values" in properties and properties.get("type") in ("AND", "OR"):
            return flatten_properties(properties["values"])
        return [properties]
    return []


def first_exposure_entity(custom_exposure_filter: Any) -> dict[str, Any] | None:
    """The first event or action of a legacy insight filter, in `order` when given."""
    if not isinstance(custom_exposure_filter, dict):
        return None
    entities = []
    for entity_type in ("events", "actions"):
        for index, entity in enumerate(custom_exposure_filter.get(entity_type) or []):
            if isinstance(entity, dict):
                entities.append((entity.get("order", index), entity_type, entity))
    if not entities:
        return None
    _, entity_type, entity = min(entities, key=lambda item: item[0] if isinstance(item[0], int) else 0)
    return {**entity, "type": entity.get("type") or entity_type}


def exposure_condition(experiment: Experiment) -> dict[str, Any]:
    target_key: Any = "$feature_flag_called"
    target_type = "events"
    event_filters: list[dict[str, Any]] = [
        {"key": "$feature_flag", "value": [experiment.feature_flag.key], "operator": "exact", "type": "event"}
    ]
    entity = first_exposure_entity((experiment.parameters or {}).get("custom_exposure_filter"))
    if entity is not None and entity.get("id"):
        target_type = entity["type"] if entity["type"] in ("events", "actions") else "events"
        target_key = entity["id"]
        if target_type == "actions":
            try:
                target_key = int(target_key)
            except (TypeError, ValueError):
                raise ValidationError(INVALID_ACTION_ID) from None
        event_filters = [
            prop
            for prop in flatten_properties(entity.get("properties"))
            if prop.get("type") in EXPOSURE_PROPERTY_TYPES
        ]
    return {
        "type": "behavioral",
        "value": "performed_event",
        "key": target_key,
        "negation": False,
        "event_type": target_type,
        "event_filters": event_filters,
        "explicit_datetime": experiment.start_date.isoformat(),
    }


def cohort_name(experiment: Experiment) -> str:
    """The exposure cohort's name, with a long experiment name shortened to fit the column."""
    room = COHORT_NAME_MAX_LENGTH - len(COHORT_NAME_TEMPLATE.format(""))
    return COHORT_NAME_TEMPLATE.format(experiment.name[:room])


def experiment_create_exposure_cohort(*, experiment: Experiment, user: User | None) -> Cohort:
    """Create and link the experiment's exposure cohort. Refused for drafts and when one exists."""
    with transaction.atomic():
        # The view found the experiment live; it stays found if it was deleted since, as a PATCH's does.
        experiment, _ = lock_experiment_and_flag(experiment, include_deleted=True)
        if experiment.start_date is None:
            raise ValidationError(NO_START_DATE)
        if experiment.exposure_cohort_id is not None:
            raise ValidationError(ALREADY_HAS_COHORT)
        cohort = Cohort.objects.create(
            project=experiment.project,
            name=cohort_name(experiment),
            is_static=False,
            is_calculating=True,
            created_by=user,
            filters={
                "properties": {
                    "type": "OR",
                    "values": [{"type": "OR", "values": [exposure_condition(experiment)]}],
                }
            },
        )
        experiment.exposure_cohort = cohort
        experiment.save(update_fields=["exposure_cohort"])
        activity_log_record(
            project=experiment.project,
            user=user,
            scope=EXPERIMENT_ACTIVITY_SCOPE,
            item_id=experiment.id,
            activity="updated",
            name=experiment.name,
            changes=[
                {
                    "type": EXPERIMENT_ACTIVITY_SCOPE,
                    "action": "created",
                    "field": "exposure_cohort",
                    "before": None,
                    "after": cohort.id,
                }
            ],
        )
    return cohort

"""Contract with PostHog's published OpenAPI document (issue 11, item 5).

For every operation of the document that this server serves, a client generated from it sends a
body holding *every* field the operation declares (as such clients do), and the answer must have the
document's status and validate against the document's response schema: types, nullability and
required fields. Deliberate differences are in `KNOWN_DEVIATIONS` (and the README).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.posthog_document import (
    KNOWN_DEVIATIONS,
    Operation,
    operations,
    request_properties,
    response_errors,
)
from tests.api.world import FLAG_FILTERS, HOLDOUT_FILTERS, RECALCULATION, World, populate
from tests.experiments.helpers import mean_metric

pytestmark = pytest.mark.django_db

# Operations of the document this server does not serve, and why.
NOT_SERVED = {
    "cohorts_create": "cohorts are read-only here (made by create_exposure_cohort_for_experiment)",
    "cohorts_update": "cohorts are read-only here",
    "cohorts_partial_update": "cohorts are read-only here",
    "experiments_requires_flag_implementation_retrieve": "this server has no events to check",
}

# What each operation acts on (the `{id}` of its path) and the part of its body that must be right
# for the write to succeed; every other declared field is added by `full_body`.
Target = Callable[[World], tuple[Any, dict[str, Any]]]
TARGETS: dict[str, Target] = {
    "cohorts_destroy": lambda w: (w.cohort.id, {}),
    "cohorts_retrieve": lambda w: (w.cohort.id, {}),
    "experiment_holdouts_create": lambda w: (None, {"name": "Contract holdout", "filters": HOLDOUT_FILTERS}),
    "experiment_holdouts_destroy": lambda w: (w.holdout.id, {}),
    "experiment_holdouts_retrieve": lambda w: (w.holdout.id, {}),
    "experiment_holdouts_partial_update": lambda w: (w.holdout.id, {"name": "H", "filters": HOLDOUT_FILTERS}),
    "experiment_holdouts_update": lambda w: (w.holdout.id, {"name": "Renamed", "filters": HOLDOUT_FILTERS}),
    "experiment_saved_metrics_create": lambda w: (None, {"name": "Contract metric", "query": mean_metric()}),
    "experiment_saved_metrics_destroy": lambda w: (w.saved_metric.id, {}),
    "experiment_saved_metrics_retrieve": lambda w: (w.saved_metric.id, {}),
    "experiment_saved_metrics_partial_update": lambda w: (
        w.saved_metric.id,
        {"name": "M", "query": mean_metric()},
    ),
    "experiment_saved_metrics_update": lambda w: (w.saved_metric.id, {"name": "M", "query": mean_metric()}),
    "experiments_create": lambda w: (None, {"name": "Contract", "feature_flag_key": "contract-flag"}),
    "experiments_destroy": lambda w: (w.draft.id, {}),
    "experiments_retrieve": lambda w: (w.running.id, {}),
    "experiments_partial_update": lambda w: (
        w.draft.id,
        {"name": "E", "feature_flag_key": w.draft.feature_flag.key},
    ),
    "experiments_update": lambda w: (
        w.draft.id,
        {"name": "Renamed", "feature_flag_key": w.draft.feature_flag.key},
    ),
    "experiments_create_exposure_cohort_for_experiment_create": lambda w: (
        w.running.id,
        {"name": "x", "feature_flag_key": w.running.feature_flag.key},
    ),
    "experiments_duplicate_create": lambda w: (w.draft.id, {"name": "Copy", "feature_flag_key": "copy-flag"}),
    "experiments_recalculate_timeseries_create": lambda w: (
        w.running.id,
        {"name": "x", "feature_flag_key": w.running.feature_flag.key, **RECALCULATION},
    ),
    "experiments_timeseries_results_retrieve": lambda w: (w.running.id, {}),
    "feature_flags_create": lambda w: (None, {"key": "contract-flag", "filters": FLAG_FILTERS}),
    "feature_flags_destroy": lambda w: (w.flag.id, {}),
    "feature_flags_retrieve": lambda w: (w.flag.id, {}),
    "feature_flags_partial_update": lambda w: (w.flag.id, {"key": w.flag.key, "filters": FLAG_FILTERS}),
    "feature_flags_update": lambda w: (w.flag.id, {"key": w.flag.key, "filters": FLAG_FILTERS}),
    "feature_flags_activity_retrieve_2": lambda w: (w.flag.id, {}),
}
QUERIES = {
    "experiments_timeseries_results_retrieve": {"metric_uuid": "m", "fingerprint": "f"},
}
# Declared fields whose type alone does not give a value the operation can take.
FIELD_VALUES: dict[str, Any] = {
    "created_at": "2024-01-01T00:00:00Z",
    "creation_context": "feature_flags",
    "evaluation_runtime": "all",
    "type": "product",
    "active": True,
}


def value_for(name: str, schema: dict[str, Any]) -> Any:
    """What a generated client sends for a field it has no value for: the field's empty value."""
    if name in FIELD_VALUES:
        return FIELD_VALUES[name]
    types = schema.get("type", [])
    types = types if isinstance(types, list) else [types]
    if "null" in types or not types:
        return None
    if "enum" in schema:
        return next(value for value in schema["enum"] if value)
    return {"boolean": False, "integer": 0, "number": 0, "string": "", "array": [], "object": {}}[types[0]]


def full_body(operation: Operation, base: dict[str, Any]) -> dict[str, Any]:
    declared = request_properties(operation.request_schema)
    return {**{name: value_for(name, schema) for name, schema in declared.items()}, **base}


SERVED = [operation for operation in operations() if operation.operation_id not in NOT_SERVED]


@pytest.fixture
def world(api) -> World:
    api.client.raise_request_exception = False
    return populate(api.project, api.user, api, marker="contract")


@pytest.mark.parametrize("operation", SERVED, ids=[operation.operation_id for operation in SERVED])
def test_every_operation_answers_as_the_document_says(world, operation):
    object_id, base = TARGETS.get(operation.operation_id, lambda w: (None, {}))(world)
    path = f"/api/projects/{world.project.id}{operation.path}".replace("{id}", str(object_id))
    if operation.request_schema is not None:
        response = world.api.generic(
            operation.method,
            path,
            __import__("json").dumps(full_body(operation, base)),
            content_type="application/json",
        )
    else:
        response = world.api.generic(operation.method, path, QUERY_STRING=query_string(operation))
    content = (
        response.json()
        if response.content and response["Content-Type"].startswith("application/json")
        else None
    )
    expected = next(iter(operation.responses))
    schema = operation.responses[expected]
    if schema is None:
        # The document gives these no body (drf-spectacular's default for untyped actions): any
        # success will do, as PostHog answers 201 for duplicate/ where the document says 200.
        assert (200 <= response.status_code < 300) or response.status_code == int(expected), content
        return
    assert response.status_code == int(expected), content
    errors = response_errors(schema, content)
    assert not errors, f"{operation.operation_id} answers outside PostHog's document:\n" + "\n".join(errors)


def query_string(operation: Operation) -> str:
    from urllib.parse import urlencode

    return urlencode(QUERIES.get(operation.operation_id, {}))


def test_every_served_operation_with_an_id_has_a_target():
    missing = [
        operation.operation_id
        for operation in SERVED
        if "{id}" in operation.path and operation.operation_id not in TARGETS
    ]
    assert not missing


def test_every_deviation_names_a_property_of_the_document():
    from tests.api.posthog_document import component

    for owner, name in KNOWN_DEVIATIONS:
        assert name is None or name in component(owner)["properties"], (owner, name)

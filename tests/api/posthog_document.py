"""PostHog's published OpenAPI document (`tests/api/posthog-openapi-subset-2025-11.yaml`, a copy of
the shared reference) read as JSON Schemas: what a client generated from it sends, and what it
expects back."""

from __future__ import annotations

import functools
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

DOCUMENT_PATH = Path(__file__).with_name("posthog-openapi-subset-2025-11.yaml")
PROJECT_PATH_PREFIX = "/api/projects/{project_id}"

USER_OR_NULL = {"anyOf": [{"type": "null"}, {"$ref": "#/components/schemas/UserBasic"}]}
CREATOR_GONE = (
    "the document makes it non-null; PostHog serves null when the user is gone (or, for objects "
    "made by the system, there never was one), and so do we"
)
# Where this server knowingly answers differently from PostHog's document, with the reason (the
# README lists them). Each replaces the property's schema (or, with None, the whole component) for
# validating our responses.
KNOWN_DEVIATIONS: dict[tuple[str, str | None], tuple[dict[str, Any], str]] = {
    ("PaginatedActivityLogList", None): (
        {
            "type": "object",
            "properties": {
                "next": {"type": ["string", "null"]},
                "previous": {"type": ["string", "null"]},
                "results": {"type": "array", "items": {"$ref": "#/components/schemas/ActivityLog"}},
            },
            "required": ["next", "previous", "results"],
        },
        "the document says a plain array; PostHog serves a page `{next, previous, results}`, as we do",
    ),
    ("Experiment", "holdout"): (
        {"anyOf": [{"type": "null"}, {"$ref": "#/components/schemas/ExperimentHoldout"}]},
        "the document makes it non-null; an experiment without a holdout has `holdout: null` in PostHog too",
    ),
    **{
        (owner, name): (USER_OR_NULL, CREATOR_GONE)
        for owner in ("Cohort", "Experiment", "ExperimentHoldout", "ExperimentSavedMetric", "FeatureFlag")
        for name in ("created_by", "last_modified_by")
        if not (owner != "FeatureFlag" and name == "last_modified_by")
    },
    ("FeatureFlag", "experiment_set"): (
        {"type": "array", "items": {"type": "integer"}},
        "the document types it as a string; PostHog serves a list of experiment ids, and so do we",
    ),
    ("FeatureFlag", "usage_dashboard"): (
        {"type": ["integer", "null"]},
        "the document makes it a non-null integer; PostHog serves null for a flag without a usage "
        "dashboard, and this server has no dashboards",
    ),
}


@functools.cache
def document() -> dict[str, Any]:
    return yaml.safe_load(DOCUMENT_PATH.read_text())


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str  # relative to the project: "/experiments/{id}/"
    request_schema: str | None  # component name of the JSON body
    request_media_types: tuple[str, ...]
    responses: dict[str, str | None]  # status → component name (None: the document gives no body)


def operations() -> list[Operation]:
    found = []
    for path, methods in document()["paths"].items():
        for method, operation in methods.items():
            content = operation.get("requestBody", {}).get("content", {})
            json_body = content.get("application/json", {}).get("schema", {})
            responses = {}
            for status, response in operation["responses"].items():
                schemas = [media["schema"] for media in response.get("content", {}).values()]
                responses[status] = component_name(schemas[0]) if schemas else None
            found.append(
                Operation(
                    operation_id=operation["operationId"],
                    method=method.upper(),
                    path=path.removeprefix(PROJECT_PATH_PREFIX),
                    request_schema=component_name(json_body) if json_body else None,
                    request_media_types=tuple(content),
                    responses=responses,
                )
            )
    return found


def component_name(schema: dict[str, Any]) -> str:
    return schema["$ref"].rsplit("/", 1)[-1]


def component(name: str) -> dict[str, Any]:
    return document()["components"]["schemas"][name]


def as_json_schema(schema: Any, *, direction: str, owner: str | None = None) -> Any:
    """An OpenAPI 3.0 schema as a JSON Schema for `direction` ("response" or "request"): `$ref`s
    inlined, `nullable` turned into a null type, and the properties that only travel the other
    way (`writeOnly` in responses, `readOnly` in requests) left out."""
    if isinstance(schema, list):
        return [as_json_schema(item, direction=direction) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        name = component_name(schema)
        if direction == "response" and (name, None) in KNOWN_DEVIATIONS:
            return as_json_schema(KNOWN_DEVIATIONS[(name, None)][0], direction=direction)
        return as_json_schema(component(name), direction=direction, owner=name)
    skipped = "writeOnly" if direction == "response" else "readOnly"
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("nullable", "readOnly", "writeOnly", "example", "description", "title", "default"):
            continue
        if key == "properties":
            converted[key] = {
                name: as_json_schema(property_schema, direction=direction)
                for name, property_schema in value.items()
                if not property_schema.get(skipped)
            }
            if direction == "response" and owner is not None:
                for (deviating_owner, name), (replacement, _reason) in KNOWN_DEVIATIONS.items():
                    if deviating_owner == owner and name in converted[key]:
                        converted[key][name] = as_json_schema(deepcopy(replacement), direction=direction)
        elif key == "required":
            properties = schema.get("properties", {})
            converted[key] = [name for name in value if not properties.get(name, {}).get(skipped)]
        else:
            converted[key] = as_json_schema(value, direction=direction)
    if schema.get("nullable"):
        if "type" in converted:
            converted["type"] = [converted["type"], "null"]
        elif "allOf" in converted:
            converted = {"anyOf": [{"type": "null"}, converted]}
    return converted


def response_errors(name: str, body: Any) -> list[str]:
    """Where `body` disagrees with the document's schema `name` (types, nullability, required)."""
    schema = as_json_schema({"$ref": f"#/components/schemas/{name}"}, direction="response")
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message[:200]}"
        for error in validator.iter_errors(body)
    ]


def request_properties(name: str) -> dict[str, Any]:
    """The fields a generated client may send in a body of schema `name`, as JSON Schemas."""
    return as_json_schema(component(name), direction="request").get("properties", {})

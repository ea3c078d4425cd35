"""The endpoints PostHog's SDKs use to get flag values: remote evaluation and local-evaluation definitions.

- `POST /flags/` (and `/decide/` for old clients) evaluates every flag of the project the body's
  project token names, for the user the body describes. No personal API key: the token is public.
  Errors are plain-text messages, as PostHog's flags service sends them.
- `GET /flags/definitions` and `GET /api/feature_flag/local_evaluation/` serve the project's flag
  definitions for SDKs to evaluate locally, with a weak ETag; they need a secret: a personal API key
  with `feature_flag:read` or the project's secret API key (`phs_…`). Errors use the API's envelope.

These are plain Django views, outside DRF, so the management API's authentication, scopes and
throttles never apply to them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.authentication import BEARER_PATTERN, PersonalAPIKeyAuthentication
from accounts.identity import ProjectAccess, key_with_access_for_project_token
from accounts.models import PersonalAPIKey
from accounts.project_tokens import DeliveryProject, delivery_project_for_token
from accounts.scopes import scopes_grant
from accounts.services import (
    PROJECT_SECRET_API_KEY_PREFIX,
    personal_api_key_digest,
    project_secret_api_key_matches,
)
from experiments_api.errors import json_error_response
from experiments_api.middleware import answers_early
from experiments_api.sdk_requests import (
    PROJECT_TOKEN_FIELDS,
    PayloadError,
    decode_payload,
    query_parameters,
    read_body,
    with_sdk_cors,
)
from flags.compiled import evaluate_compiled_flags
from flags.definitions import PROCESS_CACHE_PROJECTS, ProjectFlagDefinitions, project_flag_definitions
from flags.evaluation import (
    MAX_DISTINCT_ID_LENGTH,
    EvaluationContext,
    FlagResult,
    person_properties_for,
)

ALLOWED_METHODS = "GET, POST, OPTIONS, HEAD"

NO_TOKEN = "No API token provided. Please include a valid API token in your request."
INVALID_TOKEN = "The provided API key is invalid or has expired. Please check your API key and try again."
MISSING_DISTINCT_ID = "The distinct_id field is missing from the request. Please include a valid identifier."
EMPTY_DISTINCT_ID = "The distinct_id field cannot be empty. Please provide a valid identifier."
PARSE_FAILED = (
    "Failed to parse request: {error}. Please ensure your request is properly formatted and all required "
    "fields are present."
)

NO_SECRET_KEY = "No personal API key provided"
INVALID_SECRET_KEY = "Invalid personal API key"
SECRET_KEY_WITHOUT_ACCESS = "Personal API key has no access to this project with the feature_flag:read scope"
MISSING_DEFINITIONS_TOKEN = "Provide the project API token in the token query parameter."
INVALID_DEFINITIONS_TOKEN = (
    "Project API key invalid. You can find your project API key in your project settings."
)
FLAG_READ_SCOPE = "feature_flag:read"


class BadFlagsRequest(Exception):
    """A `/flags` request that cannot be evaluated; `status` and the plain-text `message` answer it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def plain_text(status: int, message: str) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def options_response() -> HttpResponse:
    response = HttpResponse(status=204)
    response["Allow"] = ALLOWED_METHODS
    response["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    return with_sdk_cors(response)


# --- remote evaluation ------------------------------------------------------------------------------


@answers_early
@csrf_exempt
def flags_view(request: HttpRequest) -> HttpResponse:
    """`/flags/`: POST evaluates; GET answers an empty flag set; HEAD 200; OPTIONS 204."""
    return with_sdk_cors(_flags_response(request, from_decide=False))


@answers_early
@csrf_exempt
def decide_view(request: HttpRequest) -> HttpResponse:
    """`/decide/`: the older endpoint, answered in the shapes PostHog maps it to (see `response_shape`)."""
    return with_sdk_cors(_flags_response(request, from_decide=True))


def _flags_response(request: HttpRequest, *, from_decide: bool) -> HttpResponse:
    if request.method == "OPTIONS":
        return options_response()
    if request.method == "HEAD":
        return HttpResponse(status=200)
    if request.method == "GET":
        return JsonResponse({"flags": {}, "errorsWhileComputingFlags": False, "requestId": str(uuid.uuid4())})
    if request.method != "POST":
        response = plain_text(405, f"Method {request.method} not allowed.")
        response["Allow"] = ALLOWED_METHODS
        return response
    try:
        answer = _evaluate_request(request, from_decide=from_decide)
    except BadFlagsRequest as error:
        return plain_text(error.status, error.message)
    if isinstance(answer, bytes):
        return HttpResponse(answer, content_type="application/json")
    return JsonResponse(answer)


def _evaluate_request(request: HttpRequest, *, from_decide: bool) -> dict[str, Any] | bytes:
    limit = settings.MAX_REQUEST_BODY_BYTES
    try:
        payload = decode_payload(request, read_body(request, limit), limit)
    except PayloadError as error:
        raise BadFlagsRequest(400, PARSE_FAILED.format(error=error)) from error
    if not isinstance(payload, dict):
        raise BadFlagsRequest(400, PARSE_FAILED.format(error="the body must be a JSON object"))

    token = next(
        (payload[field] for field in PROJECT_TOKEN_FIELDS if isinstance(payload.get(field), str)), None
    )
    if not token:
        raise BadFlagsRequest(401, NO_TOKEN)
    project = delivery_project_for_token(token)
    if project is None:
        raise BadFlagsRequest(401, INVALID_TOKEN)

    context_args = _context_arguments(payload)
    definitions = project_flag_definitions(project)
    requested = _requested_keys(payload)
    context = EvaluationContext(
        group_type_mapping=definitions.group_type_mapping,
        cohorts=definitions.cohorts,
        flags_by_key=definitions.flags_by_key,
        **context_args,
    )
    if requested is None:
        results = definitions.flag_set.evaluate(context)
    else:
        results = evaluate_compiled_flags(definitions.compiled_flags_named(requested), context)
    version = _requested_version(request)
    if uses_v2_shape(
        version, from_decide=from_decide, config_requested="config" in query_parameters(request)
    ):
        return v2_body(results, definitions)
    return response_shape(results, version=version, from_decide=from_decide)


def _object_field(payload: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = payload.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadFlagsRequest(400, PARSE_FAILED.format(error=f"{name} must be an object"))
    return value


def _context_arguments(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The user described by the request: distinct id, groups and properties, validated."""
    raw_id = payload.get("distinct_id", payload.get("$distinct_id"))
    if raw_id is None:
        raise BadFlagsRequest(400, MISSING_DISTINCT_ID)
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int | float):
        raise BadFlagsRequest(400, PARSE_FAILED.format(error="distinct_id must be a string or a number"))
    distinct_id = str(raw_id)[:MAX_DISTINCT_ID_LENGTH]
    if not distinct_id.strip():
        raise BadFlagsRequest(400, EMPTY_DISTINCT_ID)

    person_properties = _object_field(payload, "person_properties")
    group_properties = _object_field(payload, "group_properties")
    if any(not isinstance(value, dict) for value in group_properties.values()):
        raise BadFlagsRequest(
            400, PARSE_FAILED.format(error="group_properties must map group types to objects")
        )
    device_id = payload.get("device_id") or person_properties.get("$device_id")
    return {
        "distinct_id": distinct_id,
        "person_properties": person_properties_for(distinct_id, person_properties),
        "groups": _object_field(payload, "groups"),
        "group_properties": group_properties,
        "device_id": str(device_id) if isinstance(device_id, str | int) and device_id != "" else None,
    }


def _requested_keys(payload: Mapping[str, Any]) -> set[str] | None:
    """`flag_keys_to_evaluate` (or its alias `flag_keys`): only these flags are answered."""
    for name in ("flag_keys_to_evaluate", "flag_keys"):
        keys = payload.get(name)
        if keys is None:
            continue
        if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
            raise BadFlagsRequest(400, PARSE_FAILED.format(error=f"{name} must be a list of strings"))
        return set(keys)
    return None


def _requested_version(request: HttpRequest) -> int | None:
    raw = query_parameters(request).get("v", "").strip()
    try:
        return int(float(raw)) if raw else None
    except (ValueError, OverflowError):
        return None


def flag_record(result: FlagResult, definition: Mapping[str, Any]) -> dict[str, Any]:
    """One flag in the v2 response shape (A.3.1)."""
    return {
        "key": result.key,
        "enabled": result.enabled,
        "variant": result.variant,
        "reason": {
            "code": str(result.reason),
            "condition_index": result.condition_index,
            "description": result.reason_description,
        },
        "metadata": {
            "id": definition.get("id"),
            "version": definition.get("version"),
            "description": definition.get("name") or None,
            "payload": result.payload if result.enabled else None,
            "has_experiment": bool(definition.get("has_experiment")),
        },
    }


def response_shape(
    results: dict[str, FlagResult], *, version: int | None, from_decide: bool
) -> dict[str, Any]:
    """The response body for a requested API version without the v2 shape (`uses_v2_shape`;
    `v2_body` gives that one), as PostHog's flags service picks it.

    `/flags`: v2 and above (or neither `v` nor `config` given) get the v2 shape; otherwise v1.
    `/decide`: v1 (or none) a list of enabled keys, v2 a map of enabled flags only, v3 the v1 shape,
    v4 and above the v2 shape.
    """
    if from_decide and (version is None or version <= 2):
        if version is None or version <= 1:
            return {
                "featureFlags": [key for key, result in results.items() if result.enabled],
                "errorsWhileComputingFlags": False,
            }
        return {
            "featureFlags": {key: result.value for key, result in results.items() if result.enabled},
            "errorsWhileComputingFlags": False,
        }
    return {
        "featureFlags": {key: result.value for key, result in results.items()},
        "featureFlagPayloads": {
            key: result.payload
            for key, result in results.items()
            if result.enabled and result.payload is not None
        },
        "errorsWhileComputingFlags": False,
    }


def uses_v2_shape(version: int | None, *, from_decide: bool, config_requested: bool) -> bool:
    """Whether the answer takes the v2 shape (a record per flag); see `response_shape`."""
    if from_decide:
        return version is not None and version >= 4
    return (version or 0) >= 2 or (version is None and not config_requested)


def v2_body(results: dict[str, FlagResult], definitions: ProjectFlagDefinitions) -> bytes:
    """The v2 answer encoded: a record per flag (`flag_record`), each encoded
    once per definitions version and outcome (the record depends on nothing else: the payload
    follows from the flag and the variant) and found by the identity of the compiled flag's shared
    result, so a large project's answer is mostly a join."""
    shared = definitions.encoded_shared_answers
    try:
        parts = list(map(shared.__getitem__, map(id, results.values())))
    except KeyError:  # a result not encoded yet, or one the general evaluator built for this request
        parts = [
            shared.get(id(result)) or _encoded_shared_answer(key, result, definitions)
            for key, result in results.items()
        ]
    head = b'{"flags":{'
    tail = b"".join(
        [
            b'},"errorsWhileComputingFlags":false,"requestId":',
            _json_bytes(str(uuid.uuid4())),
            b',"evaluatedAt":',
            str(int(time.time() * 1000)).encode(),
            b"}",
        ]
    )
    if not parts:
        return head + tail
    # One join of the records, the head and tail stuck to the first and last: a large answer is
    # copied once, not once more to add them.
    parts[0] = head + parts[0]
    parts[-1] += tail
    return b",".join(parts)


def _encoded_shared_answer(key: str, result: FlagResult, definitions: ProjectFlagDefinitions) -> bytes:
    """`_encoded_answer`, kept by the result's identity when it is a compiled flag's shared result."""
    part = _encoded_answer(key, result, definitions)
    if definitions.compiled_flags[definitions.positions[key]].holds(result):
        definitions.encoded_shared_answers[id(result)] = part
    return part


def _encoded_answer(key: str, result: FlagResult, definitions: ProjectFlagDefinitions) -> bytes:
    """`"key":record` for one flag's result, encoded once per definitions version and outcome."""
    encoded = definitions.encoded_answers
    outcome = (key, result.enabled, result.variant, result.reason, result.condition_index)
    part = encoded.get(outcome)
    if part is None:
        record = flag_record(result, definitions.flags_by_key[key])
        part = encoded[outcome] = _json_bytes(key) + b":" + _json_bytes(record)
    return part


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


# --- local-evaluation definitions -------------------------------------------------------------------


# Exempt from CSRF as every bearer-authenticated SDK view is: it reads no cookie or session, and
# another method than GET is its own 405, not a CSRF refusal.
@answers_early
@csrf_exempt
def definitions_view(request: HttpRequest) -> HttpResponse:
    """`GET /flags/definitions?token=<phc_…>&send_cohorts`: the project's definitions for SDKs."""
    secret = secret_read_bearer(request)
    if isinstance(secret, HttpResponse):
        return secret
    token = query_parameters(request).get("token", "").strip()
    if not token:
        return json_error_response(
            401, "authentication_error", "authentication_failed", MISSING_DEFINITIONS_TOKEN
        )
    project = definitions_reader_project(secret, token)
    if isinstance(project, HttpResponse):
        return project
    return definitions_response(request, project)


def secret_read_bearer(request: HttpRequest) -> str | HttpResponse:
    """The bearer secret of an SDK's GET of server-side data, or the answer refusing the request."""
    if request.method not in ("GET", "HEAD"):
        response = json_error_response(
            405, "invalid_request", "method_not_allowed", f'Method "{request.method}" not allowed.'
        )
        response["Allow"] = "GET, HEAD"
        return response
    bearer = BEARER_PATTERN.match(request.META.get("HTTP_AUTHORIZATION", ""))
    if bearer is None:
        return json_error_response(401, "authentication_error", "not_authenticated", NO_SECRET_KEY)
    return bearer.group(1)


def definitions_reader_project(secret: str, token: str) -> DeliveryProject | HttpResponse:
    """The project of `token` when `secret` may read its definitions, else the 401 saying why."""
    project, failure = definitions_reader_check(secret, token)
    if project is None:
        return json_error_response(401, "authentication_error", "invalid_api_key", INVALID_DEFINITIONS_TOKEN)
    if failure is not None:
        return json_error_response(401, "authentication_error", "authentication_failed", failure)
    return project


def definitions_response(request: HttpRequest, project: DeliveryProject) -> HttpResponse:
    """The project's definitions, or 304 when the caller's `If-None-Match` already holds them."""
    definitions = project_flag_definitions(project)
    # Read from META: `request.headers` would decode every header of the request to find this one.
    not_modified = _etag_matches(request.META.get("HTTP_IF_NONE_MATCH", ""), definitions)
    not_modified_headers, body_headers = _definitions_headers(definitions.etag)
    if not_modified:
        return HttpResponse(status=304, headers=not_modified_headers)
    return HttpResponse(definitions.body, headers=body_headers)


@lru_cache(maxsize=PROCESS_CACHE_PROJECTS)
def _definitions_headers(etag: str) -> tuple[dict[str, str], dict[str, str]]:
    """The headers of a 304 and of a full answer for definitions with this ETag, in the order they
    are sent; built once per definitions version instead of header by header on every poll. The
    304 carries the Content-Type Django gives a response that names none."""
    validators = {"ETag": etag, "Cache-Control": "private, must-revalidate"}
    return (
        {"Content-Type": f"text/html; charset={settings.DEFAULT_CHARSET}", **validators},
        {"Content-Type": "application/json", **validators},
    )


def definitions_reader_check(secret: str, token: str) -> tuple[DeliveryProject | None, str | None]:
    """The project whose public token this is (None when there is none) and why this bearer secret
    may not read its definitions (None when it may): a project secret key or a personal API key."""
    if secret.startswith(PROJECT_SECRET_API_KEY_PREFIX):
        project = delivery_project_for_token(token)
        return project, None if project is None else _project_secret_key_failure(secret, project)
    found = key_with_access_for_project_token(personal_api_key_digest(secret), token)
    if found is None:
        return None, None
    project, key_access = found
    return project, _personal_api_key_failure(key_access, project)


def _project_secret_key_failure(secret: str, project: DeliveryProject) -> str | None:
    """Why this project secret key may not read the project's definitions (it is not the project's
    current or backup key), or None when it may."""
    matches = project_secret_api_key_matches(
        secret=secret,
        digest=project.secret_api_token_digest,
        backup_digest=project.secret_api_token_backup_digest,
    )
    return None if matches else INVALID_SECRET_KEY


def _personal_api_key_failure(
    key_access: tuple[PersonalAPIKey, ProjectAccess | None] | None, project: DeliveryProject
) -> str | None:
    """Why a personal API key (as `key_with_access_for_project_token` found it) may not read the
    project's definitions, or None when it may: it must be an active user's, reach the project
    (membership, `scoped_teams`, `scoped_organizations`) and carry `feature_flag:read` (or a scope
    that implies it)."""
    if key_access is None:
        return INVALID_SECRET_KEY
    key, access = key_access
    if not scopes_grant(key.effective_scopes, FLAG_READ_SCOPE):
        return SECRET_KEY_WITHOUT_ACCESS
    if key.scoped_teams and project.id not in key.scoped_teams:
        return SECRET_KEY_WITHOUT_ACCESS
    if key.scoped_organizations and str(project.organization_id) not in key.scoped_organizations:
        return SECRET_KEY_WITHOUT_ACCESS
    if access is None or access.project is None:  # not a member of the project's organization
        return SECRET_KEY_WITHOUT_ACCESS
    PersonalAPIKeyAuthentication.touch(key)
    return None


def _etag_matches(header: str, definitions: ProjectFlagDefinitions) -> bool:
    """Weak comparison (RFC 9110): `W/"x"` and `"x"` are the same tag; `*` matches anything."""
    ours = definitions.etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == ours:
            return True
    return False

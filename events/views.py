"""Event intake: `POST /batch/`, `/capture/`, `/e/` and `/i/v0/e/`, as PostHog's capture answers them.

Authenticated by the project token in the body (`api_key`, `token` or `$token`, or an event's
`properties.token`). Accepts a batch (`{"batch": [...]}` or a bare list) or a single event, as JSON,
gzip or deflate JSON, or form-encoded `data=`. Answers `200 {"status": 1}`; malformed input gets a
400 in the API's error envelope and nothing of the request is stored.
"""

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from accounts.project_tokens import delivery_project_for_token
from events.services import InvalidEvent, captured_event, events_capture, parse_moment
from events.throttling import event_intake_allowed
from experiments_api.errors import error_body, json_error_response
from experiments_api.middleware import request_body_limit_setting
from experiments_api.sdk_requests import (
    PROJECT_TOKEN_FIELDS,
    PayloadError,
    PayloadTooLarge,
    decode_payload,
    read_body,
    with_sdk_cors,
)

MISSING_TOKEN = "API key not provided. You can find your project API key in your project settings."
RATE_LIMITED = "Too many event requests from this address. Slow down and retry after Retry-After seconds."
INVALID_TOKEN = "Project API key invalid. You can find your project API key in your project settings."


def _token(payload: Any, events: list[Any]) -> str | None:
    sources = [payload] if isinstance(payload, dict) else []
    for event in events[:1]:
        if isinstance(event, dict):
            sources.append(event)
            if isinstance(event.get("properties"), dict):
                sources.append(event["properties"])
    for source in sources:
        for field in PROJECT_TOKEN_FIELDS:
            if isinstance(source.get(field), str) and source[field].strip():
                return source[field].strip()
    return None


def _events_of(payload: Any) -> tuple[list[Any], bool]:
    """(events, whether they came as a batch) for any accepted payload form."""
    if isinstance(payload, list):
        return payload, True
    if isinstance(payload, dict) and "batch" in payload:
        if not isinstance(payload["batch"], list):
            raise InvalidEvent("batch must be a list of events.", "batch")
        return payload["batch"], True
    if isinstance(payload, dict) and "event" not in payload and isinstance(payload.get("data"), list | dict):
        data = payload["data"]
        return (data, True) if isinstance(data, list) else ([data], False)
    return [payload], False


@csrf_exempt
@request_body_limit_setting("MAX_EVENT_BODY_BYTES")
def capture_view(request: HttpRequest) -> HttpResponse:
    """Store the events of one capture request for the project its token names."""
    if request.method == "OPTIONS":
        response = HttpResponse(status=204)
        response["Allow"] = "POST, OPTIONS"
        response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        return with_sdk_cors(response)
    if request.method != "POST":
        response = json_error_response(
            405, "invalid_request", "method_not_allowed", f'Method "{request.method}" not allowed.'
        )
        response["Allow"] = "POST, OPTIONS"
        return response
    allowed, retry_after = event_intake_allowed(request)
    if not allowed:
        response = json_error_response(429, "throttled_error", "throttled", RATE_LIMITED)
        if retry_after is not None:
            response["Retry-After"] = str(retry_after)
        return with_sdk_cors(response)
    return with_sdk_cors(_capture(request))


def _capture(request: HttpRequest) -> HttpResponse:
    limit = settings.MAX_EVENT_BODY_BYTES
    try:
        payload = decode_payload(request, read_body(request, limit), limit)
    except PayloadTooLarge as error:
        return json_error_response(413, "invalid_request", "request_too_large", str(error))
    except PayloadError as error:
        return json_error_response(
            400, "invalid_request", "invalid_payload", f"Malformed request data: {error}"
        )

    try:
        raw_events, is_batch = _events_of(payload)
    except InvalidEvent as error:
        return JsonResponse(
            error_body("validation_error", "invalid_payload", error.message, error.attr), status=400
        )
    token = _token(payload, raw_events)
    if token is None:
        return json_error_response(401, "authentication_error", "missing_api_key", MISSING_TOKEN)
    project = delivery_project_for_token(token)
    if project is None:
        return json_error_response(401, "authentication_error", "invalid_api_key", INVALID_TOKEN)

    now = timezone.now()
    sent_at = (
        parse_moment(payload.get("sent_at") or payload.get("sentAt")) if isinstance(payload, dict) else None
    )
    try:
        events = [
            captured_event(raw, index=index if is_batch else None, sent_at=sent_at, now=now)
            for index, raw in enumerate(raw_events)
        ]
    except InvalidEvent as error:
        return JsonResponse(
            error_body("validation_error", "invalid_payload", error.message, error.attr), status=400
        )
    events_capture(project_id=project.id, events=events)
    return JsonResponse({"status": 1})

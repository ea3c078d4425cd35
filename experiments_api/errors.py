"""One error format for the whole API: `{"type", "code", "detail", "attr"}` (PostHog's exceptions-hog).

`type` classifies the exception, `code` is the DRF code of the first error (`invalid` becomes
`invalid_input`), `detail` its message and `attr` the field path of the first error joined with
`__` (null for non-field errors). Only the first error is reported.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger("experiments_api.errors")

NON_FIELD_KEYS = {"non_field_errors", "__all__"}
SERVER_ERROR_DETAIL = "A server error occurred."
DATABASE_UNAVAILABLE_DETAIL = "The database is unavailable. Try again shortly."
DATABASE_RETRY_AFTER_SECONDS = 5
# What the database driver raises when the server cannot be reached, drops the connection, or
# cancels the statement: the request may succeed later, so it is a 503, not a bug's 500.
DATABASE_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)


def error_body(type_: str, code: str, detail: str, attr: str | None = None) -> dict[str, Any]:
    return {"type": type_, "code": code, "detail": detail, "attr": attr}


def exception_type(exc: exceptions.APIException) -> str:
    custom = getattr(exc, "default_type", None)
    if custom:
        return custom
    if isinstance(exc, exceptions.ValidationError):
        return "validation_error"
    if isinstance(
        exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed | exceptions.PermissionDenied
    ):
        return "authentication_error"
    if isinstance(
        exc,
        exceptions.NotFound
        | exceptions.MethodNotAllowed
        | exceptions.ParseError
        | exceptions.NotAcceptable
        | exceptions.UnsupportedMediaType,
    ):
        return "invalid_request"
    if isinstance(exc, exceptions.Throttled):
        return "throttled_error"
    return "server_error" if exc.status_code >= 500 else "invalid_request"


def first_error(detail: Any, path: tuple[str, ...] = ()) -> tuple[Any, tuple[str, ...]] | None:
    """Depth-first search for the first leaf error and the field path that leads to it."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            found = first_error(value, path if key in NON_FIELD_KEYS else (*path, str(key)))
            if found is not None:
                return found
        return None
    if isinstance(detail, list | tuple):
        only_leaves = all(not isinstance(item, dict | list | tuple) for item in detail)
        for index, item in enumerate(detail):
            found = first_error(item, path if only_leaves else (*path, str(index)))
            if found is not None:
                return found
        return None
    return detail, path


def envelope_for(exc: exceptions.APIException) -> dict[str, Any]:
    type_ = exception_type(exc)
    found = first_error(exc.detail)
    if found is None:
        return error_body(type_, exc.default_code, str(exc.default_detail))
    leaf, path = found
    code = getattr(leaf, "code", None) or exc.default_code
    if code == "invalid":
        code = "invalid_input"
    attr = "__".join(path) if path and type_ == "validation_error" else None
    return error_body(type_, code, str(leaf), attr)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        set_rollback()
        return Response(envelope_for(exc), status=exc.status_code, headers=headers)

    request = context.get("request")
    request_id = getattr(request, "request_id", None) if request is not None else None
    if isinstance(exc, DATABASE_UNAVAILABLE_ERRORS):
        log_database_unavailable(request_id, exc)
        return Response(
            error_body("server_error", "service_unavailable", DATABASE_UNAVAILABLE_DETAIL),
            status=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    logger.exception("Unhandled exception (request_id=%s)", request_id)
    set_rollback()
    return Response(error_body("server_error", "error", SERVER_ERROR_DETAIL), status=500)


def log_database_unavailable(request_id: str | None, exc: Exception) -> None:
    logger.error("Database unavailable (request_id=%s): %s", request_id, exc, exc_info=exc)


def database_unavailable_response() -> JsonResponse:
    response = json_error_response(503, "server_error", "service_unavailable", DATABASE_UNAVAILABLE_DETAIL)
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


def json_error_response(status: int, type_: str, code: str, detail: str) -> JsonResponse:
    return JsonResponse(
        error_body(type_, code, detail), status=status, json_dumps_params={"separators": (",", ":")}
    )


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error_response(400, "invalid_request", "bad_request", "Bad request.")


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error_response(
        403, "authentication_error", "permission_denied", "You do not have permission to perform this action."
    )


@csrf_exempt
def api_endpoint_not_found(request: HttpRequest) -> JsonResponse:
    return json_error_response(404, "invalid_request", "not_found", "Endpoint not found.")


def handler404(request: HttpRequest, exception: Exception | None = None):
    if not request.path.startswith("/api/"):
        return defaults.page_not_found(request, exception)
    return api_endpoint_not_found(request)


def handler500(request: HttpRequest) -> JsonResponse:
    return json_error_response(500, "server_error", "error", SERVER_ERROR_DETAIL)


def csrf_failure(request: HttpRequest, reason: str = ""):
    """A refused CSRF check (only session-authenticated writes have one), in the API's format."""
    if not request.path.startswith("/api/"):
        return django_csrf_failure(request, reason)
    return json_error_response(403, "authentication_error", "csrf_failed", f"CSRF Failed: {reason}")

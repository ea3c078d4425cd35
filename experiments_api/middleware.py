"""Request-level plumbing around every view: a request id, a body size limit, NUL refusal, and 503
for a database outage."""

import re
import uuid
from collections.abc import Callable
from io import BytesIO

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse

from experiments_api.errors import (
    DATABASE_UNAVAILABLE_ERRORS,
    database_unavailable_response,
    json_error_response,
    log_database_unavailable,
)

REQUEST_ID_HEADER = "X-Request-ID"
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
NUL_IN_PATH = "The path must not contain NUL characters."
NUL_IN_QUERY = "Query parameters must not contain NUL characters."


class RequestIdMiddleware:
    """Tag each request with an id (the caller's X-Request-ID when well-formed) and echo it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = incoming if SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        return response


class DatabaseUnavailableMiddleware:
    """A database outage met by a plain Django view (the SDK endpoints, health, admin) answers 503
    with Retry-After, as the DRF views do, instead of a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_UNAVAILABLE_ERRORS):
            return None
        log_database_unavailable(getattr(request, "request_id", None), exception)
        return database_unavailable_response()


class NulCharacterMiddleware:
    """Refuse paths and query strings carrying NUL characters, which no lookup can use and
    PostgreSQL rejects (a NUL in a text id such as a personal API key's was a 500)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path:
            return json_error_response(400, "invalid_request", "bad_request", NUL_IN_PATH)
        if any(
            "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()
        ):
            return json_error_response(400, "invalid_request", "bad_request", NUL_IN_QUERY)
        return self.get_response(request)


class RequestBodyLimitMiddleware:
    """Refuse bodies over the limit with 413 before the view (or anything else) reads them.

    The limit is MAX_REQUEST_BODY_BYTES, unless the view was decorated with
    `request_body_limit_setting("OTHER_SETTING")`: event intake accepts the larger batches SDKs send.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable, view_args, view_kwargs
    ) -> HttpResponse | None:
        limit = getattr(settings, getattr(view_func, BODY_LIMIT_SETTING_ATTRIBUTE, "MAX_REQUEST_BODY_BYTES"))
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return read_chunked_body(request, limit)
        raw_length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            return json_error_response(
                400, "invalid_request", "bad_request", "Invalid Content-Length header."
            )
        if length > limit:
            return body_too_large(limit)
        return None


BODY_LIMIT_SETTING_ATTRIBUTE = "request_body_limit_setting"
CHUNKED_BODY_NOT_READABLE = (
    "This server cannot read a chunked request body here; send the body with a Content-Length."
)


def body_too_large(limit: int) -> HttpResponse:
    return json_error_response(
        413, "invalid_request", "request_too_large", f"Request body is too large: the limit is {limit} bytes."
    )


def read_chunked_body(request: HttpRequest, limit: int) -> HttpResponse | None:
    """Make a body sent with `Transfer-Encoding: chunked` readable by the view.

    Django reads as many bytes as Content-Length says, and a chunked request has none, so without
    this the view would see an empty body and answer as if nothing had been sent. A server that
    de-chunks the input and marks its end (`wsgi.input_terminated`, as gunicorn does) is read here,
    up to the limit; on any other server the request is refused with 411 Length Required.
    """
    if not request.META.get("wsgi.input_terminated"):
        return json_error_response(411, "invalid_request", "length_required", CHUNKED_BODY_NOT_READABLE)
    body = request.META["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        return body_too_large(limit)
    request.META["CONTENT_LENGTH"] = str(len(body))
    # WSGIRequest read its stream's length from the missing Content-Length when it was built.
    request._stream = LimitedStream(BytesIO(body), len(body))
    return None


def request_body_limit_setting(setting_name: str) -> Callable[[Callable], Callable]:
    """Mark a view as accepting bodies up to `settings.<setting_name>` bytes instead of the default."""

    def mark(view: Callable) -> Callable:
        setattr(view, BODY_LIMIT_SETTING_ATTRIBUTE, setting_name)
        return view

    return mark

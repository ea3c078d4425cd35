"""Request-level plumbing around every view: a request id, a body size limit, NUL refusal, 503
for a database outage, and early answers for the reads that need no browser-session machinery."""

import re
import uuid
from collections.abc import Callable
from functools import lru_cache
from io import BytesIO

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import Resolver404, URLResolver, get_resolver, get_urlconf

from experiments_api.errors import (
    DATABASE_UNAVAILABLE_ERRORS,
    database_unavailable_response,
    json_error_response,
    log_database_unavailable,
)

REQUEST_ID_HEADER = "X-Request-ID"
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
NUL_IN_PATH = "The path must not contain NUL characters."
NUL_IN_QUERY = "Query parameters must not contain NUL characters."


class RequestIdMiddleware:
    """Tag each request with an id (the caller's X-Request-ID when well-formed) and echo it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = incoming if SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
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


# A view answering some calls itself before the middleware below `EarlyAnswerMiddleware` runs
# carries this attribute: a function of (request, *url args, **url kwargs) → the answer, or None to
# hand the call to the view through the whole stack.
EARLY_ANSWER_ATTRIBUTE = "early_answer"
# The methods Django's CSRF check lets through without a token.
CSRF_SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")
# Set on a request whose early answer was already tried, so the view does not try it twice.
EARLY_ANSWER_TRIED = "early_answer_tried"


class EarlyAnswerMiddleware:
    """Answer a call whose view can answer it early (see EARLY_ANSWER_ATTRIBUTE) before the
    browser-session middleware (CSRF, authentication, messages) runs.

    Those only matter to the admin and to DRF's session authentication; an early answer is one a
    view gives from an API key or a project token alone, touching no session, CSRF token or
    message, so they would add nothing to it but CPU. The URL is resolved here; a call the view
    declines goes on through the rest of the stack (and is resolved again there), and so does a
    database outage met by such a view, whose own path answers it with 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        answer = self.early_answer(request)
        return answer if answer is not None else self.get_response(request)

    @staticmethod
    def early_answer(request: HttpRequest) -> HttpResponseBase | None:
        found = _early_answer_route(get_resolver(get_urlconf()), request.path_info)
        if found is None:
            return None
        answer, view, args, kwargs = found
        # The CSRF check below would refuse an unsafe method to a view not exempt from it.
        if request.method not in CSRF_SAFE_METHODS and not getattr(view, "csrf_exempt", False):
            return None
        meta = request.META
        if meta.get("CONTENT_LENGTH") not in (None, "", "0") or "HTTP_TRANSFER_ENCODING" in meta:
            # A body is checked as the view's own path checks it, and only for an answer that never
            # declines: a declined call would have its body checked (and a chunked one read) twice.
            if answer is not view:
                return None
            refused = body_limit_refusal(request, view)
            if refused is not None:
                return refused
        setattr(request, EARLY_ANSWER_TRIED, True)
        try:
            return answer(request, *args, **kwargs)
        except DATABASE_UNAVAILABLE_ERRORS as error:
            if answer is view:
                # As `DatabaseUnavailableMiddleware` answers it when the view raises it.
                log_database_unavailable(getattr(request, "request_id", None), error)
                return database_unavailable_response()
            setattr(request, EARLY_ANSWER_TRIED, False)
            return None


def answers_early(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Mark a plain view that needs none of the browser-session middleware (it reads no session,
    user, CSRF token or message) as its own early answer. Unsafe methods are answered early only
    when the view is CSRF-exempt: apply this above `csrf_exempt`."""
    setattr(view, EARLY_ANSWER_ATTRIBUTE, view)
    return view


# Paths whose route this process has looked up (a poll asks the same few paths over and over).
EARLY_ANSWER_ROUTES_HELD = 4096


@lru_cache(maxsize=EARLY_ANSWER_ROUTES_HELD)
def _early_answer_route(resolver: URLResolver, path: str) -> tuple[Callable, Callable, tuple, dict] | None:
    """The early answer of the view `resolver` routes `path` to, the view and the URL's arguments,
    or None when there is none. Routing depends on nothing but the path, so the answer is remembered."""
    try:
        match = resolver.resolve(path)
    except Resolver404:
        return None
    answer = getattr(match.func, EARLY_ANSWER_ATTRIBUTE, None)
    return None if answer is None else (answer, match.func, tuple(match.args), dict(match.kwargs))


def early_answer_view(
    answer: Callable[..., HttpResponseBase | None], through: Callable[..., HttpResponseBase]
) -> Callable[..., HttpResponseBase]:
    """A view giving `answer`'s answer when there is one, else `through`'s; `EarlyAnswerMiddleware`
    tries `answer` before the browser-session middleware, and then the view does not try it again."""

    def view(request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
        found = None if getattr(request, EARLY_ANSWER_TRIED, False) else answer(request, *args, **kwargs)
        return found if found is not None else through(request, *args, **kwargs)

    setattr(view, EARLY_ANSWER_ATTRIBUTE, answer)
    view.csrf_exempt = True
    return view


class NulCharacterMiddleware:
    """Refuse paths and query strings carrying NUL characters, which no lookup can use and
    PostgreSQL rejects (a NUL in a text id such as a personal API key's was a 500)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path:
            return json_error_response(400, "invalid_request", "bad_request", NUL_IN_PATH)
        if query_needs_parsing(request.META.get("QUERY_STRING", "")) and any(
            "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()
        ):
            return json_error_response(400, "invalid_request", "bad_request", NUL_IN_QUERY)
        return self.get_response(request)


def query_needs_parsing(query_string: str) -> bool:
    """Whether parsing this query string could yield a NUL character (only a raw NUL or `%00`
    decodes to one) or be refused for its number of fields (`TooManyFieldsSent`, a 400). Any other
    query string parses without either, so it is left for the view to parse if it reads it."""
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    return (
        "\x00" in query_string
        or "%00" in query_string
        or (limit is not None and query_string.count("&") >= limit)
    )


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
        return body_limit_refusal(request, view_func)


def body_limit_refusal(request: HttpRequest, view_func: Callable) -> HttpResponse | None:
    """The refusal of a body over the view's limit (or unreadable), else None (a chunked body made
    readable)."""
    limit = getattr(settings, getattr(view_func, BODY_LIMIT_SETTING_ATTRIBUTE, "MAX_REQUEST_BODY_BYTES"))
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        return read_chunked_body(request, limit)
    raw_length = request.META.get("CONTENT_LENGTH") or "0"
    try:
        length = int(raw_length)
    except ValueError:
        return json_error_response(400, "invalid_request", "bad_request", "Invalid Content-Length header.")
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

"""How strictly a request is read: lenient like PostHog by default, strict on request.

PostHog's serializers ignore request fields they do not know, and its clients (the agent toolkit,
clients generated from its OpenAPI document) rely on that. So by default an unknown field is
ignored, but never invisibly: every ignored field is named in the `Ignored-Fields` response
header. A client that wants mistakes refused sends `Prefer: handling=strict` (RFC 7240), and the
server answers `Preference-Applied: handling=strict`: unknown fields and non-empty bodies of
body-less actions are then a 400.

The state lives in a context variable set for the duration of one request, so any serializer —
nested ones and action bodies included — can report what it ignored without being handed the request.
"""

import json
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.http import HttpRequest, HttpResponse

MANAGEMENT_API_PREFIX = "/api/"
IGNORED_FIELDS_HEADER = "Ignored-Fields"
PREFERENCE_APPLIED_HEADER = "Preference-Applied"
STRICT = "strict"
LENIENT = "lenient"
# Stands for a whole body that was ignored because it was not a JSON object (a body-less action's).
WHOLE_BODY = "(body)"
# Field names shown as they are; any other name is shown JSON-quoted with non-ASCII escaped, so
# a hostile key cannot break the header (newlines, non-Latin-1) or bloat it past what clients read.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_.$@-]{1,100}")
MAX_NAMES_SHOWN = 50
MAX_NAME_SHOWN = 100
# One preference of a `Prefer` header: `token [= value] *(; parameter)`, value possibly quoted.
PREFERENCE = re.compile(r'^\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*("[^"]*"|[^;\s]*))?')


@dataclass
class RequestHandling:
    """The handling of the current request and the request fields it ignored, in order."""

    strict: bool
    requested: str | None = None
    # An ordered set: a body may hold many thousands of unknown keys.
    ignored_names: dict[str, None] = field(default_factory=dict)

    @property
    def ignored(self) -> list[str]:
        return list(self.ignored_names)

    def ignore(self, name: str) -> None:
        self.ignored_names[name] = None


# Outside a request (a management command, the admin replaying a change) nothing may be ignored
# without a header to say so, so the absence of request state means strict.
_current: ContextVar[RequestHandling | None] = ContextVar("request_handling", default=None)


def current_handling() -> RequestHandling:
    return _current.get() or RequestHandling(strict=True)


def requested_handling(prefer_header: str) -> str | None:
    """The `handling` preference of a `Prefer` header (`strict` or `lenient`), or None."""
    for preference in prefer_header.split(","):
        match = PREFERENCE.match(preference)
        if match and match.group(1).lower() == "handling":
            value = (match.group(2) or "").strip('"').lower()
            if value in (STRICT, LENIENT):
                return value
    return None


def shown_name(name: str) -> str:
    if PLAIN_NAME.fullmatch(name) or name == WHOLE_BODY:
        return name
    quoted = json.dumps(name[:MAX_NAME_SHOWN])
    return quoted if len(name) <= MAX_NAME_SHOWN else f'{quoted[:-1]}..."'


def ignored_fields_header(names: list[str]) -> str:
    shown = [shown_name(name) for name in names[:MAX_NAMES_SHOWN]]
    if len(names) > MAX_NAMES_SHOWN:
        shown.append(f"({len(names) - MAX_NAMES_SHOWN} more)")
    return ", ".join(shown)


class RequestHandlingMiddleware:
    """Set the request's handling from its `Prefer` header and report it on the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        requested = requested_handling(request.META.get("HTTP_PREFER", ""))
        handling = RequestHandling(strict=requested == STRICT, requested=requested)
        token = _current.set(handling)
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        if handling.ignored_names:
            response[IGNORED_FIELDS_HEADER] = ignored_fields_header(handling.ignored)
        # The SDK endpoints (`/flags`, `/batch`, …) follow PostHog's SDK protocol, not this preference.
        if requested is not None and request.path.startswith(MANAGEMENT_API_PREFIX):
            response[PREFERENCE_APPLIED_HEADER] = f"handling={requested}"
        return response

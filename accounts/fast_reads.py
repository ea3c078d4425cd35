"""Reads answered without DRF's dispatch when the answer is already known.

DRF's dispatch — wrapping the request, negotiating the renderer, running the authentication,
permission and throttle classes, finalising the response — costs about as much CPU as everything
else a cached read does. Two reads skip it for the common call (GET, a personal API key in the
Authorization header, a JSON answer, no `format` override):
- `GET /api/users/@me/` (`accounts.views.me_view`), from the body kept with the key's identity;
- a project-scoped list or retrieve whose answer the versioned response cache already holds
  (`cached_read_view`).

They check what the DRF view checks, with the same functions: the key (through `accounts.identity`),
the project access, the key's project and organization scoping and scopes
(`accounts.permissions`), and the rate limits (the view's own throttle classes; a refusal is
answered here, as DRF answers it). Any other request, any other refusal and any cache miss is
handed to the DRF view unchanged, so every error answer is still DRF's.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.urls import URLPattern, re_path
from rest_framework import exceptions

from accounts.authentication import BEARER_PATTERN, PersonalAPIKeyAuthentication
from accounts.identity import ProjectAccess, key_with_access, project_id_from_url
from accounts.models import OrganizationMembership, PersonalAPIKey
from accounts.permissions import APIScopePermission, required_scopes_for
from accounts.scopes import scopes_grant
from accounts.services import PROJECT_SECRET_API_KEY_PREFIX, personal_api_key_digest
from experiments_api.errors import envelope_for
from experiments_api.middleware import early_answer_view
from experiments_api.response_cache import (
    VersionedResponseCacheMixin,
    answer_key,
    cached_answer_response,
    process_response_cache,
)

JSON_ACCEPTS = ("", "*/*", "application/json")
JSON_MEDIA_TYPE = "application/json"


@dataclass(frozen=True)
class KeyCall:
    """A plain JSON GET made with a known personal API key: the key's digest, the key (its `user`
    loaded) and, when a project was asked about, the user's access to it."""

    digest: str
    key: PersonalAPIKey
    access: ProjectAccess | None


def key_call(request: HttpRequest, project_id: int | None) -> KeyCall | None:
    """The call, or None for anything DRF must answer: another method, another media type, no
    personal API key in the Authorization header, or a key no active user has."""
    if (
        request.method != "GET"
        or request.META.get("HTTP_ACCEPT", "").strip() not in JSON_ACCEPTS
        or "format" in request.GET
    ):
        return None
    bearer = BEARER_PATTERN.match(request.META.get("HTTP_AUTHORIZATION", ""))
    if bearer is None or bearer.group(1).startswith(PROJECT_SECRET_API_KEY_PREFIX):
        return None
    digest = personal_api_key_digest(bearer.group(1))
    found = key_with_access(digest, project_id)
    # A call handed on to DRF authenticates with what was read here instead of reading it again.
    request.personal_api_key_found = (digest, project_id, found)
    if found is None or not hmac.compare_digest(found[0].secure_value, digest):
        return None
    return KeyCall(digest, found[0], found[1])


def rate_limit_refusal(
    key: PersonalAPIKey, throttle_classes: list[type], view_headers: dict[str, str]
) -> HttpResponse | None:
    """The 429 the DRF view would answer when one of the key's rate limits is spent, else None.
    Every limit is counted, as DRF counts them."""
    if not settings.RATE_LIMIT_ENABLED:
        return None
    caller = SimpleNamespace(auth=key)
    waits = []
    for throttle in (throttle_class() for throttle_class in throttle_classes):
        if not throttle.allow_request(caller, None):
            waits.append(throttle.wait())
    if not waits:
        return None
    refusal = exceptions.Throttled(max((wait for wait in waits if wait is not None), default=None))
    response = JsonResponse(envelope_for(refusal), status=429, json_dumps_params={"separators": (",", ":")})
    if refusal.wait:
        response["Retry-After"] = str(int(refusal.wait))
    for name, value in view_headers.items():
        response[name] = value
    return response


def cached_read_view(through_drf: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """The router's view of a project-scoped ViewSet, answering a cached list or retrieve itself
    when it can (see the module's docstring). Views of other ViewSets or routes come back as they
    are."""
    viewset = getattr(through_drf, "cls", None)
    action = (getattr(through_drf, "actions", None) or {}).get("get")
    if (
        viewset is None
        or not issubclass(viewset, VersionedResponseCacheMixin)
        or action not in ("list", "retrieve")
    ):
        return through_drf
    stand_in = SimpleNamespace(
        action=action,
        required_scopes=getattr(viewset, "required_scopes", None),
        scope_object=getattr(viewset, "scope_object", None),
        **{
            name: getattr(viewset, name)
            for name in ("scope_object_read_actions", "scope_object_write_actions")
            if hasattr(viewset, name)
        },
    )
    required_scopes = required_scopes_for(SimpleNamespace(method="GET"), stand_in)

    def cached_answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase | None:
        return _cached_answer(request, kwargs, viewset, required_scopes)

    view = early_answer_view(cached_answer, through_drf)
    view.cls = viewset
    view.actions = through_drf.actions
    view.initkwargs = getattr(through_drf, "initkwargs", {})
    return view


def _cached_answer(
    request: HttpRequest, url_kwargs: dict[str, Any], viewset: type, required_scopes: list[str]
) -> HttpResponseBase | None:
    project_id = project_id_from_url(url_kwargs.get("project_id"))
    if not settings.RESPONSE_CACHE_ENABLED or not required_scopes or project_id is None:
        return None
    call = key_call(request, project_id)
    if call is None or call.access is None or call.access.project is None:
        return None
    key, project = call.key, call.access.project
    if not all(scopes_grant(key.effective_scopes, scope) for scope in required_scopes):
        return None
    try:
        APIScopePermission.check_project_and_organization_scoping(
            key, SimpleNamespace(scoping_project=lambda: project)
        )
    except exceptions.PermissionDenied:
        return None
    entry = process_response_cache.get(
        answer_key(
            project,
            user_id=key.user_id,
            membership_level=getattr(project, "membership_level", OrganizationMembership.Level.MEMBER),
            absolute_url=request.build_absolute_uri(),
            media_type=JSON_MEDIA_TYPE,
        )
    )
    if entry is None:
        return None
    refused = rate_limit_refusal(key, viewset.throttle_classes, entry.view_headers)
    if refused is not None:
        return refused
    PersonalAPIKeyAuthentication.touch(key)
    answer = cached_answer_response(entry, request.META.get("HTTP_IF_NONE_MATCH", ""))
    for name, value in entry.view_headers.items():
        answer[name] = value
    return answer


def with_cached_reads(urls: list[URLPattern]) -> list[URLPattern]:
    """The router's URLs with each project-scoped list and retrieve view wrapped by
    `cached_read_view` (the others unchanged)."""
    return [
        re_path(url.pattern.regex.pattern, cached_read_view(url.callback), name=url.name)
        if isinstance(url, URLPattern)
        else url
        for url in urls
    ]

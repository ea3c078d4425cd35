"""List and retrieve answers cached per process, validated by the project's data version.

A project's `data_version` moves in the same transaction as every write to what the management API
serves from it (`accounts.versions`), and a project-scoped request reads it in the same statement
that checks the caller's access to the project. An answer is cached under (project, data version,
user, the user's membership level, the absolute URL with its query string), so:
- a committed write is never followed by a stale read, on any process: the next request reads the
  new version and misses;
- a cached answer is only ever served to the user it was built for, after that request's own
  authentication, scope and project-access checks ran (they are not cached).

Each answer carries a weak `ETag` of its body; a client polling with `If-None-Match` gets 304.
Only JSON answers with status 200 are cached; the browsable API is always built afresh.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpResponse, HttpResponseBase, HttpResponseNotModified
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response


@dataclass(frozen=True)
class CachedAnswer:
    """A 200 answer's body with its weak ETag, content type and the view's own headers (`Allow`,
    `Vary`), which every answer of the view carries."""

    etag: str
    body: bytes
    content_type: str
    view_headers: dict[str, str]


class _ProcessResponseCache:
    """Least-recently-used (key → answer), bounded by the bodies' total size."""

    def __init__(self) -> None:
        self.entries: OrderedDict[tuple, CachedAnswer] = OrderedDict()
        self.size = 0

    def get(self, key: tuple) -> CachedAnswer | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key: tuple, entry: CachedAnswer) -> None:
        budget = settings.RESPONSE_CACHE_BYTES
        if len(entry.body) > budget // 8:
            return
        previous = self.entries.pop(key, None)
        if previous is not None:
            self.size -= len(previous.body)
        self.entries[key] = entry
        self.size += len(entry.body)
        while self.size > budget:
            _, dropped = self.entries.popitem(last=False)
            self.size -= len(dropped.body)

    def clear(self) -> None:
        self.entries.clear()
        self.size = 0


process_response_cache = _ProcessResponseCache()


def etag_matches(header: str, etag: str) -> bool:
    """Weak comparison (RFC 9110): `W/"x"` and `"x"` are the same tag; `*` matches anything."""
    ours = etag.removeprefix("W/")
    return any(
        candidate.strip() == "*" or candidate.strip().removeprefix("W/") == ours
        for candidate in header.split(",")
    )


class VersionedResponseCacheMixin:
    """For project-scoped ViewSets whose `project` carries `data_version` and `membership_level`."""

    def list(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return self._versioned_answer(request, super().list, *args, **kwargs)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return self._versioned_answer(request, super().retrieve, *args, **kwargs)

    def _versioned_answer(
        self, request: Request, build: Callable[..., HttpResponseBase], *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        if not settings.RESPONSE_CACHE_ENABLED or not isinstance(request.accepted_renderer, JSONRenderer):
            return build(request, *args, **kwargs)
        key = answer_key(
            self.project,
            user_id=request.user.pk,
            membership_level=self.membership_level,
            absolute_url=request.build_absolute_uri(),
            media_type=request.accepted_media_type,
        )
        entry = process_response_cache.get(key)
        if entry is None:
            response = build(request, *args, **kwargs)
            if not isinstance(response, Response) or response.status_code != 200:
                return response
            response.accepted_renderer = request.accepted_renderer
            response.accepted_media_type = request.accepted_media_type
            response.renderer_context = self.get_renderer_context()
            body = response.rendered_content
            entry = CachedAnswer(
                f'W/"{hashlib.sha256(body).hexdigest()[:32]}"',
                body,
                response["Content-Type"],
                dict(self.headers),
            )
            process_response_cache.put(key, entry)
        return cached_answer_response(entry, request.headers.get("If-None-Match", ""))


def answer_key(
    project: Any, *, user_id: int, membership_level: int, absolute_url: str, media_type: str
) -> tuple:
    """Where an answer is cached: the project at its data version, the caller and their membership
    level, the absolute URL (pagination links in the body carry scheme and host), the media type."""
    return (
        project.id,
        getattr(project, "data_version", None) or 0,
        user_id,
        membership_level,
        absolute_url,
        media_type,
    )


def cached_answer_response(entry: CachedAnswer, if_none_match: str) -> HttpResponseBase:
    """The cached answer, or 304 to a client that holds its ETag."""
    if etag_matches(if_none_match, entry.etag):
        answer: HttpResponseBase = HttpResponseNotModified()
    else:
        answer = HttpResponse(entry.body, content_type=entry.content_type)
    answer["ETag"] = entry.etag
    answer["Cache-Control"] = "private, no-cache"
    return answer

"""Tags on flags and saved metrics, as PostHog has them: free-form names, trimmed and lowercased,
each at most once per object; lists filter on them with `?tags=["a","b"]` (any of them).

Tags are stored as a JSON list on the tagged row, so reading them costs no query of its own.
"""

import json
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from experiments_api.parsers import JSONTooDeep, json_value

TAG_MAX_LENGTH = 255
MAX_TAGS = 100
TAGS_QUERY_INVALID = 'tags must be a JSON-encoded list of tag names, e.g. ["beta", "checkout"].'


def tagify(tag: str) -> str:
    return tag.strip().lower()


class TagsField(serializers.ListField):
    """A list of tag names, given back trimmed, lowercased and without repeats (first one kept)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", serializers.CharField(max_length=TAG_MAX_LENGTH, allow_blank=True))
        kwargs.setdefault("max_length", MAX_TAGS)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        tags = []
        for tag in super().to_internal_value(data):
            tag = tagify(tag)
            if tag and tag not in tags:
                tags.append(tag)
        return tags


def tags_from_query(raw: str | None) -> list[str]:
    """The tags of a `?tags=` list filter (a JSON-encoded list of names; one bare name also works)."""
    if raw is None or not raw.strip():
        return []
    try:
        parsed = json_value(raw)
    except JSONTooDeep:
        raise ValidationError({"tags": [TAGS_QUERY_INVALID]}) from None
    except ValueError:
        parsed = [raw]
    if isinstance(parsed, str):
        parsed = [parsed]
    if not isinstance(parsed, list) or not all(isinstance(tag, str) for tag in parsed):
        raise ValidationError({"tags": [TAGS_QUERY_INVALID]})
    return [tagify(tag) for tag in parsed if tagify(tag)]


def tagged_with_any(queryset: QuerySet, tags: list[str]) -> QuerySet:
    """Rows of `queryset` (a model with a `tags` JSON list) carrying at least one of `tags`."""
    if not tags:
        return queryset
    if connection.vendor == "postgresql":
        condition = Q()
        for tag in tags:
            condition |= Q(tags__contains=[tag])
        return queryset.filter(condition)
    # Other databases have no JSON containment: match the stored JSON text of the list, which holds
    # each element exactly as Django's JSON encoder wrote it.
    condition = Q()
    for tag in tags:
        condition |= Q(tags_text__contains=json.dumps(tag))
    return queryset.annotate(tags_text=Cast("tags", TextField())).filter(condition)

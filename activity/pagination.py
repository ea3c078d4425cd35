"""PostHog's activity pagination: a cursor by default, page numbers when `?page=` is given, and the
per-resource `{results, next, previous, total_count}` page used by `/<resource>/<id>/activity/`."""

from typing import Any

from django.core.paginator import EmptyPage, Paginator
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import pagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from activity.serializers import ActivityLogSerializer

RESOURCE_PAGE_DEFAULT_LIMIT = 10
RESOURCE_PAGE_MAX_LIMIT = 100
RESOURCE_PAGE_PARAMETERS = [
    OpenApiParameter("limit", OpenApiTypes.INT),
    OpenApiParameter("page", OpenApiTypes.INT),
]


class ActivityCursorPagination(pagination.CursorPagination):
    page_size = 100
    ordering = ("-created_at", "-id")


class ActivityPageNumberPagination(pagination.PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class ActivityLogPagination(pagination.BasePagination):
    """Chooses page-number pagination when the request asks for a page, a cursor otherwise."""

    def __init__(self) -> None:
        self.delegate: pagination.BasePagination = ActivityCursorPagination()

    # The browsable API shows the page controls of the pagination in use.
    @property
    def display_page_controls(self) -> bool:
        return self.delegate.display_page_controls

    def to_html(self) -> str:
        return self.delegate.to_html()

    def paginate_queryset(self, queryset: QuerySet, request: Request, view=None) -> list | None:
        if "page" in request.query_params:
            self.delegate = ActivityPageNumberPagination()
        return self.delegate.paginate_queryset(queryset, request, view=view)

    def get_paginated_response(self, data: list) -> Response:
        return self.delegate.get_paginated_response(data)

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["results"],
            "properties": {
                "count": {"type": "integer"},
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict[str, Any]]:
        return [
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "page", "in": "query", "required": False, "schema": {"type": "integer"}},
            {"name": "page_size", "in": "query", "required": False, "schema": {"type": "integer"}},
        ]


def positive_int(raw: str | None, default: int, maximum: int | None = None) -> int:
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        value = default
    value = max(value, 1)
    return min(value, maximum) if maximum else value


def activity_page_response(queryset: QuerySet, request: Request) -> Response:
    """One page of a resource's activity: `?limit=` (default 10) and `?page=` (default 1)."""
    limit = positive_int(
        request.query_params.get("limit"), RESOURCE_PAGE_DEFAULT_LIMIT, RESOURCE_PAGE_MAX_LIMIT
    )
    page_number = positive_int(request.query_params.get("page"), 1)
    paginator = Paginator(queryset, limit)
    try:
        page = paginator.page(page_number)
        entries = list(page.object_list)
        has_next, has_previous = page.has_next(), page.has_previous()
    except EmptyPage:
        entries, has_next, has_previous = [], False, page_number > 1
    url = request.build_absolute_uri()
    return Response(
        {
            "results": ActivityLogSerializer(entries, many=True).data,
            "next": replace_query_param(url, "page", page_number + 1) if has_next else None,
            "previous": replace_query_param(url, "page", page_number - 1) if has_previous else None,
            "total_count": paginator.count,
        }
    )

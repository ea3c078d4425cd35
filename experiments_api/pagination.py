from collections import OrderedDict

from django.db.models import QuerySet
from rest_framework import pagination
from rest_framework.request import Request

# Beyond this no table can have rows, and PostgreSQL's OFFSET is a bigint.
MAX_OFFSET = 2**62
# Counts up to this are exact on every request: `count(*)` over at most this many rows (~1 ms).
EXACT_COUNT_LIMIT = 10_000
LARGE_COUNTS_KEPT = 1024

# (project, data version, path without limit and offset) → count, for lists beyond EXACT_COUNT_LIMIT.
_large_counts: OrderedDict[tuple, int] = OrderedDict()


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """PostHog's pagination: `?limit=&offset=`, 100 per page by default, at most 1000.

    `count` is exact. A list of more than EXACT_COUNT_LIMIT rows (a full `count(*)` of 100 000
    experiments takes ~40 ms) is counted once per project data version and filter, then the count is
    shared by every page of it on this process; any write to the project moves the data version.
    """

    default_limit = 100
    max_limit = 1000

    def paginate_queryset(self, queryset: QuerySet, request: Request, view=None) -> list | None:
        self.view = view
        return super().paginate_queryset(queryset, request, view)

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), MAX_OFFSET)

    def get_count(self, queryset: QuerySet) -> int:
        capped = queryset[: EXACT_COUNT_LIMIT + 1].count()
        if capped <= EXACT_COUNT_LIMIT:
            return capped
        project = getattr(getattr(self, "view", None), "project", None)
        if project is None:
            return queryset.count()
        params = sorted(
            (name, value)
            for name, value in self.request.query_params.items()
            if name not in (self.limit_query_param, self.offset_query_param)
        )
        # No version row yet means no write yet: version 0, which the first write moves to 1.
        key = (project.id, getattr(project, "data_version", None) or 0, self.request.path, tuple(params))
        count = _large_counts.get(key)
        if count is None:
            count = queryset.count()
            _large_counts[key] = count
            while len(_large_counts) > LARGE_COUNTS_KEPT:
                _large_counts.popitem(last=False)
        return count

from rest_framework import pagination
from rest_framework.request import Request

# Beyond this no table can have rows, and PostgreSQL's OFFSET is a bigint.
MAX_OFFSET = 2**62


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """PostHog's pagination: `?limit=&offset=`, 100 per page by default, at most 1000."""

    default_limit = 100
    max_limit = 1000

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), MAX_OFFSET)

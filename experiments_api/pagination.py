from rest_framework import pagination


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """PostHog's pagination: `?limit=&offset=`, 100 per page by default, at most 1000."""

    default_limit = 100
    max_limit = 1000

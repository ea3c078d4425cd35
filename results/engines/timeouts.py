"""How long an engine's query may run, for both engines: web requests wait at most
`RESULTS_QUERY_TIMEOUT_SECONDS`; background computations set `statement_timeout_seconds` to 0
(no limit), since nobody waits on them."""

from contextvars import ContextVar

from django.conf import settings
from rest_framework.exceptions import APIException

statement_timeout_seconds: ContextVar[int | None] = ContextVar("results_statement_timeout", default=None)


def query_timeout_seconds() -> int:
    """The limit for a query run now, in seconds (0: none)."""
    timeout = statement_timeout_seconds.get()
    return settings.RESULTS_QUERY_TIMEOUT_SECONDS if timeout is None else timeout


class ResultsQueryTimeout(APIException):
    status_code = 504
    default_code = "query_timeout"
    default_detail = (
        "Computing this result took longer than the server allows (RESULTS_QUERY_TIMEOUT_SECONDS). "
        "Ask for it with refresh 'async' to compute it in the background."
    )

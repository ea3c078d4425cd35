"""Health endpoints for load balancers and orchestrators. Plain Django views: no auth, no DRF.

- `/_liveness`: the process answers (restart it if not).
- `/_ready`: the instance can serve requests (send it traffic only if 200): 503 when a dependency
  it cannot work without is down.
- `/_health`: the same verdict, for monitoring; its body names each dependency's state.

Every check reports into one dict, so a new dependency is one more entry in `dependency_states`.
"""

import logging

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

OK = "ok"
# A cache without Redis is process-local by configuration, not by failure.
HEALTHY_STATES = frozenset({OK, "local"})
# Dependencies without which no request can be served; any other failing check only degrades.
REQUIRED_DEPENDENCIES = frozenset({"database"})


def database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.warning("Health check: the database is unreachable", exc_info=True)
        return "unreachable"
    return OK


def dependency_states() -> dict[str, str]:
    """Each dependency's state: `ok`, or what is wrong with it."""
    return {"database": database_state(), "cache": cache_status()}


def health_report() -> tuple[dict[str, str], int]:
    """The body (`status` plus one entry per dependency) and the HTTP status to answer with."""
    states = dependency_states()
    failing = {name for name, state in states.items() if state not in HEALTHY_STATES}
    if failing & REQUIRED_DEPENDENCIES:
        return {"status": "error", **states}, 503
    return {"status": "degraded" if failing else OK, **states}, 200


@require_GET
def liveness(request: HttpRequest) -> HttpResponse:
    """The process answers. Touches nothing else; the floor benchmarks compare against."""
    return HttpResponse("ok", content_type="text/plain")


@require_GET
def readiness(request: HttpRequest) -> JsonResponse:
    """Whether to send this instance traffic: 503 while a required dependency is down."""
    body, status = health_report()
    return JsonResponse(body, status=status)


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """The instance's state for monitoring: the readiness verdict with each dependency's state."""
    body, status = health_report()
    return JsonResponse(body, status=status)


def cache_status() -> str:
    """Whether Redis answers ("ok"), fails while the process serves from its own memory
    ("degraded": the API still works) or is not configured ("local")."""
    redis_reachable = getattr(cache, "redis_reachable", None)
    if redis_reachable is None:
        return "local"
    return "ok" if redis_reachable() else "degraded"

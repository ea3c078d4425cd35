"""Health endpoints for load balancers and orchestrators. Plain Django views: no auth, no DRF."""

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def liveness(request: HttpRequest) -> HttpResponse:
    """The process answers. Touches nothing else; the floor benchmarks compare against."""
    return HttpResponse("ok", content_type="text/plain")


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """The process answers and can query the database. `cache` says whether Redis answers ("ok"),
    fails while the process serves from its own memory ("degraded", still 200: the API works) or is
    not configured ("local")."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        return JsonResponse(
            {"status": "error", "database": "unreachable", "cache": cache_status()}, status=503
        )
    return JsonResponse({"status": "ok", "database": "ok", "cache": cache_status()})


def cache_status() -> str:
    redis_reachable = getattr(cache, "redis_reachable", None)
    if redis_reachable is None:
        return "local"
    return "ok" if redis_reachable() else "degraded"

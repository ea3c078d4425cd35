"""Health endpoints for load balancers and orchestrators. Plain Django views: no auth, no DRF."""

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def liveness(request: HttpRequest) -> HttpResponse:
    """The process answers. Touches nothing else; the floor benchmarks compare against."""
    return HttpResponse("ok", content_type="text/plain")


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """The process answers and can query the database."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})

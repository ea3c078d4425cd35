"""The project's URLs plus one plain view that answers early but is not exempt from CSRF, so the
early-answer middleware's handling of such views stays tested (every view of the project that
answers early is CSRF-exempt)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from experiments_api.middleware import answers_early
from experiments_api.urls import urlpatterns as project_urlpatterns

NOT_EXEMPT_PATH = "test-early-answer-not-csrf-exempt/"


@answers_early
def not_exempt_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.method)


urlpatterns = [path(NOT_EXEMPT_PATH, not_exempt_view), *project_urlpatterns]

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts.views import PersonalAPIKeyViewSet, ProjectViewSet, UserViewSet
from events.views import capture_view
from experiments_api.errors import api_endpoint_not_found
from experiments_api.health import health, liveness
from experiments_api.routing import ApiRouter
from flags.delivery import decide_view, definitions_view, flags_view

router = ApiRouter()
router.register("projects", ProjectViewSet, basename="project")
router.register("users", UserViewSet, basename="user")
router.register("personal_api_keys", PersonalAPIKeyViewSet, basename="personal_api_key")

# What PostHog's SDKs call: remote evaluation, local-evaluation definitions and event capture.
sdk_urlpatterns = [
    re_path(r"^flags/definitions/?$", definitions_view, name="flag-definitions"),
    re_path(r"^api/feature_flag/local_evaluation/?$", definitions_view, name="flag-local-evaluation"),
    re_path(r"^flags/?$", flags_view, name="flags"),
    re_path(r"^decide/?$", decide_view, name="decide"),
    re_path(r"^(?:batch|capture|e|i/v0/e)/?$", capture_view, name="capture"),
]

urlpatterns = [
    *sdk_urlpatterns,
    path("_health", health, name="health"),
    path("_liveness", liveness, name="liveness"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/schema/swagger-ui/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/schema/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api/", include(router.urls)),
    re_path(r"^api/", api_endpoint_not_found),
]

handler400 = "experiments_api.errors.handler400"
handler403 = "experiments_api.errors.handler403"
handler404 = "experiments_api.errors.handler404"
handler500 = "experiments_api.errors.handler500"

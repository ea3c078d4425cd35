from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts.fast_reads import with_cached_reads
from accounts.views import PersonalAPIKeyViewSet, ProjectViewSet, UserViewSet, me_view
from activity.views import ActivityLogViewSet
from approvals.views import ApprovalPolicyViewSet, ChangeRequestViewSet
from events.views import capture_view
from experiments.views import ExperimentSavedMetricViewSet, ExperimentViewSet
from experiments_api.errors import api_endpoint_not_found
from experiments_api.health import health, liveness, readiness
from experiments_api.routing import ApiRouter
from flags.delivery import decide_view, definitions_view, flags_view
from flags.remote_config import remote_config_view
from flags.views import CohortViewSet, FeatureFlagViewSet
from holdouts.views import ExperimentHoldoutViewSet
from results.views import QueryViewSet

router = ApiRouter()
router.register("projects", ProjectViewSet, basename="project")
router.register("users", UserViewSet, basename="user")
router.register("personal_api_keys", PersonalAPIKeyViewSet, basename="personal_api_key")
router.register_project_resource("experiments", ExperimentViewSet, basename="experiment")
router.register_project_resource(
    "experiment_saved_metrics", ExperimentSavedMetricViewSet, basename="saved_metric"
)
router.register_project_resource(
    "experiment_holdouts", ExperimentHoldoutViewSet, basename="experiment_holdout"
)
router.register_project_resource("feature_flags", FeatureFlagViewSet, basename="feature_flag")
router.register_project_resource("cohorts", CohortViewSet, basename="cohort")
router.register_project_resource("activity_log", ActivityLogViewSet, basename="activity_log")
router.register_project_resource("change_requests", ChangeRequestViewSet, basename="change_request")
router.register_project_resource("approval_policies", ApprovalPolicyViewSet, basename="approval_policy")
router.register_project_resource("query", QueryViewSet, basename="query")

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
    path("_ready", readiness, name="readiness"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/schema/swagger-ui/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/schema/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    # Before the router's route for the same path: the common call skips DRF's dispatch.
    re_path(
        r"^api/users/(?P<pk>@me)/?$",
        me_view(next(url.callback for url in router.urls if url.name == "user-detail")),
        name="me",
    ),
    # A project secret key is no user: served beside the router (whose views need one), not by it.
    re_path(
        r"^api/(?:projects|environments)/(?P<project_id>[^/]+)/feature_flags/(?P<flag_ref>[^/]+)/remote_config/?$",
        remote_config_view,
        name="flag-remote-config",
    ),
    # Cached lists and retrieves are answered before DRF's dispatch (accounts/fast_reads.py).
    path("api/", include(with_cached_reads(router.urls))),
    re_path(r"^api/", api_endpoint_not_found),
]

handler400 = "experiments_api.errors.handler400"
handler403 = "experiments_api.errors.handler403"
handler404 = "experiments_api.errors.handler404"
handler500 = "experiments_api.errors.handler500"

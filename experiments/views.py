from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import PersonalAPIKey
from accounts.scoping import ProjectScopedViewSetMixin
from activity.pagination import RESOURCE_PAGE_PARAMETERS, activity_page_response
from activity.selectors import item_activity
from approvals.mixins import ApprovalHandlingMixin
from experiments import lifecycle
from experiments.cloning import experiment_copy_to_project, experiment_duplicate
from experiments.exposure import experiment_create_exposure_cohort
from experiments.filters import ExperimentFilter, ExperimentSavedMetricFilter
from experiments.lifecycle import EXPERIMENT_ACTIVITY_SCOPE
from experiments.models import Experiment, ExperimentSavedMetric
from experiments.recalculations import (
    metrics_recalculation_body,
    metrics_recalculation_get,
    metrics_recalculation_latest,
    metrics_recalculation_request,
)
from experiments.results import (
    experiment_request_timeseries_recalculation,
    experiment_velocity_stats,
    timeseries_results,
)
from experiments.saved_metrics import saved_metric_create, saved_metric_delete, saved_metric_update
from experiments.selectors import (
    experiment_list,
    experiment_queryset,
    experiment_reference,
    experiment_to_lock,
    parse_created_by_ids,
)
from experiments.serializers import (
    ArchiveExperimentSerializer,
    CopyToProjectSerializer,
    DuplicateExperimentSerializer,
    EndExperimentSerializer,
    ExperimentBasicSerializer,
    ExperimentSavedMetricSerializer,
    ExperimentSerializer,
    MetricsRecalculationSerializer,
    RecalculateTimeseriesSerializer,
    ShipVariantSerializer,
)
from experiments.services import experiment_create
from experiments.updates import experiment_update
from experiments_api.mixins import BodylessActionsMixin, SoftDeletedModelViewSet
from experiments_api.pagination import MAX_OFFSET
from experiments_api.response_cache import VersionedResponseCacheMixin
from experiments_api.serializers import ActionBodySerializer, body_of_bodyless_action, validated_body
from flags.selectors import eligible_flags_for_experiments
from flags.serializers import CohortSerializer, FeatureFlagSerializer

WRITE = ["experiment:write"]
CREATE_ONLY_FIELDS = ("allow_unknown_events", "update_feature_flag_params", "_create_in_folder")
# Actions whose service reads the experiment under a lock (with what the response shows): the view's
# own read, if it makes one, only finds the row and its project.
LOCKING_ACTIONS = frozenset(
    {
        "update",
        "partial_update",
        "launch",
        "pause",
        "resume",
        "end",
        "ship_variant",
        "reset",
        "archive",
        "unarchive",
    }
)
INVALID_LIMIT_OR_OFFSET = "Invalid limit or offset"
ELIGIBLE_DEFAULT_LIMIT = 20
ELIGIBLE_MAX_LIMIT = 100


def is_truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


class ExperimentViewSet(
    VersionedResponseCacheMixin,
    BodylessActionsMixin,
    ApprovalHandlingMixin,
    ProjectScopedViewSetMixin,
    SoftDeletedModelViewSet,
):
    """Experiments and their lifecycle. Each experiment owns (or shares) a feature flag."""

    scope_object = "experiment"
    serializer_class = ExperimentSerializer
    queryset = Experiment.objects.all()
    bodyless_actions = frozenset(
        {"launch", "pause", "resume", "reset", "unarchive", "create_exposure_cohort_for_experiment"}
    )

    @property
    def filterset_class(self) -> type[ExperimentFilter] | None:
        # The filters (and their defaults: non-archived, newest first) narrow the list only.
        return ExperimentFilter if self.action == "list" else None

    def get_serializer_class(self):
        return ExperimentBasicSerializer if self.action == "list" else super().get_serializer_class()

    def filter_queryset_for_action(self, queryset: QuerySet) -> QuerySet:
        if self.action == "list":
            return experiment_list(self.project)
        # A PATCH that sets `deleted` to a false value is a restore, so it must find deleted rows.
        restoring = (
            self.action in ("update", "partial_update")
            and isinstance(self.request.data, dict)
            and "deleted" in self.request.data
            and not is_truthy(self.request.data.get("deleted"))
        )
        if self.action in LOCKING_ACTIONS:
            return experiment_to_lock(self.project, include_deleted=restoring)
        return experiment_queryset(self.project, include_deleted=restoring)

    def respond(self, experiment: Experiment, status_code: int = status.HTTP_200_OK) -> Response:
        """Render an experiment as a write service returned it (created, or read under its lock with
        everything its representation shows), so it is not read again."""
        serializer = ExperimentSerializer(experiment, context=self.get_serializer_context())
        return Response(serializer.data, status=status_code)

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        for field in CREATE_ONLY_FIELDS:
            data.pop(field, None)
        experiment = experiment_create(
            project=self.project,
            user=request.user,
            name=data.pop("name"),
            feature_flag_key=data.pop("feature_flag_key"),
            **data,
        )
        return self.respond(experiment, status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        partial = kwargs.pop("partial", False)
        experiment = self.get_object()
        serializer = self.get_serializer(experiment, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        update_flag = data.pop("update_feature_flag_params", False)
        data.pop("allow_unknown_events", None)
        # A client generated from PostHog's document may send it on any write; there are no folders.
        data.pop("_create_in_folder", None)
        experiment = experiment_update(
            experiment=experiment, user=request.user, data=data, update_feature_flag_params=update_flag
        )
        return self.respond(experiment)

    def action_body(self, serializer_class: type[ActionBodySerializer] | None = None) -> dict[str, Any]:
        """A lifecycle action's body: validated by `serializer_class`, or, for an action that takes
        none, checked and ignored (`body_of_bodyless_action`). A refused body is answered only once
        the experiment is found, so a missing experiment is a 404 whatever the body."""
        try:
            if serializer_class is None:
                body_of_bodyless_action(self.request)
                return {}
            return validated_body(self.request, serializer_class)
        except exceptions.APIException:
            self.get_object()
            raise

    def transition(self, service: Callable[..., Experiment], **arguments: Any) -> Response:
        """Run a lifecycle service on the experiment the URL names and render what it returns. The
        view does not read the row: the service reads it once, under its lock, and a project without
        that live experiment is a 404 from there."""
        try:
            experiment = service(
                experiment=experiment_reference(
                    self.project, self.kwargs[self.lookup_url_kwarg or self.lookup_field]
                ),
                user=self.request.user,
                **arguments,
            )
        except Experiment.DoesNotExist:
            raise exceptions.NotFound() from None
        return self.respond(experiment)

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"], required_scopes=WRITE)
    def launch(self, request: Request, *args, **kwargs) -> Response:
        """Launch a draft experiment: activates its flag and sets start_date to now."""
        self.action_body()
        return self.transition(lifecycle.experiment_launch)

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"], required_scopes=WRITE)
    def pause(self, request: Request, *args, **kwargs) -> Response:
        """Pause a running experiment: deactivates its flag."""
        self.action_body()
        return self.transition(lifecycle.experiment_pause)

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"], required_scopes=WRITE)
    def resume(self, request: Request, *args, **kwargs) -> Response:
        """Resume a paused experiment: reactivates its flag."""
        self.action_body()
        return self.transition(lifecycle.experiment_resume)

    @extend_schema(request=EndExperimentSerializer, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"], required_scopes=WRITE)
    def end(self, request: Request, *args, **kwargs) -> Response:
        """End a running experiment without shipping a variant; the flag is not modified."""
        values = self.action_body(EndExperimentSerializer)
        return self.transition(
            lifecycle.experiment_end,
            conclusion=values.get("conclusion"),
            conclusion_comment=values.get("conclusion_comment"),
        )

    @extend_schema(request=ShipVariantSerializer, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"], required_scopes=WRITE)
    def ship_variant(self, request: Request, *args, **kwargs) -> Response:
        """Roll one variant out to 100% and end the experiment if it is running."""
        values = self.action_body(ShipVariantSerializer)
        return self.transition(
            lifecycle.experiment_ship_variant,
            variant_key=values["variant_key"],
            release_to_everyone=values["release_to_everyone"],
            conclusion=values.get("conclusion"),
            conclusion_comment=values.get("conclusion_comment"),
            conclusion_given="conclusion" in values,
            conclusion_comment_given="conclusion_comment" in values,
        )

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"], required_scopes=WRITE)
    def reset(self, request: Request, *args, **kwargs) -> Response:
        """Reset an experiment back to draft; the flag is left unchanged."""
        self.action_body()
        return self.transition(lifecycle.experiment_reset)

    @extend_schema(request=ArchiveExperimentSerializer, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"], required_scopes=WRITE)
    def archive(self, request: Request, *args, **kwargs) -> Response:
        """Archive an ended experiment."""
        self.action_body(ArchiveExperimentSerializer)
        return self.transition(lifecycle.experiment_archive)

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"], required_scopes=WRITE)
    def unarchive(self, request: Request, *args, **kwargs) -> Response:
        """Unarchive an archived experiment."""
        self.action_body()
        return self.transition(lifecycle.experiment_unarchive)

    @extend_schema(request=DuplicateExperimentSerializer, responses={201: ExperimentSerializer})
    @action(detail=True, methods=["post"], required_scopes=WRITE)
    def duplicate(self, request: Request, *args, **kwargs) -> Response:
        """Duplicate as a new draft. The same flag key shares the source's flag."""
        source = self.get_object()
        values = validated_body(request, DuplicateExperimentSerializer)
        experiment = experiment_duplicate(
            source=source,
            user=request.user,
            feature_flag_key=values.get("feature_flag_key"),
            name=values.get("name"),
        )
        return self.respond(experiment, status.HTTP_201_CREATED)

    @extend_schema(request=CopyToProjectSerializer, responses={201: ExperimentSerializer})
    @action(detail=True, methods=["post"], required_scopes=WRITE)
    def copy_to_project(self, request: Request, *args, **kwargs) -> Response:
        """Copy as a new draft into another project of the same organization."""
        source = self.get_object()
        values = validated_body(request, CopyToProjectSerializer)
        experiment = experiment_copy_to_project(
            source=source,
            user=request.user,
            target_team_id=values["target_team_id"],
            key=request.auth if isinstance(request.auth, PersonalAPIKey) else None,
            feature_flag_key=values.get("feature_flag_key") or None,
            name=values.get("name") or None,
        )
        serializer = ExperimentSerializer(
            experiment_queryset(experiment.project).get(pk=experiment.pk),
            context=self.get_serializer_context(),
        )
        return Response(serializer.data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={201: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"], required_scopes=WRITE)
    def create_exposure_cohort_for_experiment(self, request: Request, *args, **kwargs) -> Response:
        """Create the cohort of users exposed to this experiment since it started."""
        cohort = experiment_create_exposure_cohort(experiment=self.get_object(), user=request.user)
        return Response({"cohort": CohortSerializer(cohort).data}, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=RecalculateTimeseriesSerializer,
        responses={200: OpenApiTypes.OBJECT, 201: OpenApiTypes.OBJECT},
    )
    @action(detail=True, methods=["post"], required_scopes=WRITE)
    def recalculate_timeseries(self, request: Request, *args, **kwargs) -> Response:
        """Request a recalculation; an active request for the same fingerprint is returned instead."""
        experiment = self.get_object()
        values = validated_body(request, RecalculateTimeseriesSerializer)
        body, created = experiment_request_timeseries_recalculation(
            experiment=experiment, metric=values["metric"], fingerprint=values["fingerprint"]
        )
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        parameters=[
            OpenApiParameter("metric_uuid", OpenApiTypes.STR, required=True),
            OpenApiParameter("fingerprint", OpenApiTypes.STR, required=True),
        ],
    )
    @action(detail=True, methods=["get"], required_scopes=["experiment:read"])
    def timeseries_results(self, request: Request, *args, **kwargs) -> Response:
        """Per-day cumulative results of one metric, as stored by the results worker."""
        experiment = self.get_object()
        metric_uuid = request.query_params.get("metric_uuid")
        fingerprint = request.query_params.get("fingerprint")
        if not metric_uuid:
            raise exceptions.ValidationError("metric_uuid query parameter is required")
        if not fingerprint:
            raise exceptions.ValidationError("fingerprint query parameter is required")
        return Response(
            timeseries_results(experiment=experiment, metric_uuid=metric_uuid, fingerprint=fingerprint)
        )

    @extend_schema(
        request=MetricsRecalculationSerializer,
        responses={200: OpenApiTypes.OBJECT, 201: OpenApiTypes.OBJECT},
    )
    @action(detail=True, methods=["post"], required_scopes=WRITE)
    def metrics_recalculation(self, request: Request, *args, **kwargs) -> Response:
        """Compute every metric of the experiment in the background; an active run is returned instead."""
        experiment = self.get_object()
        values = validated_body(request, MetricsRecalculationSerializer)
        recalculation, created = metrics_recalculation_request(
            experiment=experiment, trigger=values["trigger"], user=request.user
        )
        return Response(
            metrics_recalculation_body(recalculation, is_existing=not created, with_results=False),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(
        detail=True,
        methods=["get"],
        required_scopes=["experiment:read"],
        url_path="metrics_recalculation/latest",
        url_name="metrics-recalculation-latest",
    )
    def metrics_recalculation_latest(self, request: Request, *args, **kwargs) -> Response:
        """The newest metrics recalculation with its results (or the newest daily results)."""
        return Response(metrics_recalculation_latest(experiment=self.get_object()))

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(
        detail=True,
        methods=["get"],
        required_scopes=["experiment:read"],
        url_path=r"metrics_recalculation/(?P<recalculation_id>[0-9a-fA-F-]{32,36})",
        url_name="metrics-recalculation-detail",
    )
    def metrics_recalculation_detail(self, request: Request, *args, **kwargs) -> Response:
        """One metrics recalculation with the results it has so far."""
        recalculation = metrics_recalculation_get(
            experiment=self.get_object(), recalculation_id=kwargs["recalculation_id"]
        )
        return Response(metrics_recalculation_body(recalculation))

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        parameters=[
            OpenApiParameter("limit", OpenApiTypes.INT),
            OpenApiParameter("offset", OpenApiTypes.INT),
            OpenApiParameter("search", OpenApiTypes.STR),
            OpenApiParameter("active", OpenApiTypes.STR),
            OpenApiParameter("created_by_id", OpenApiTypes.STR),
            OpenApiParameter("order", OpenApiTypes.STR),
            OpenApiParameter("evaluation_runtime", OpenApiTypes.STR),
            OpenApiParameter("has_evaluation_contexts", OpenApiTypes.STR),
        ],
    )
    @action(detail=False, methods=["get"], required_scopes=["feature_flag:read"])
    def eligible_feature_flags(self, request: Request, *args, **kwargs) -> Response:
        """Flags an experiment can use: multivariate, two or more variants, `control` first."""
        params = request.query_params
        try:
            limit = min(int(params.get("limit", ELIGIBLE_DEFAULT_LIMIT)), ELIGIBLE_MAX_LIMIT)
            offset = min(max(int(params.get("offset", 0)), 0), MAX_OFFSET)
        except ValueError:
            raise exceptions.ValidationError(INVALID_LIMIT_OR_OFFSET) from None
        limit = max(limit, 0)
        queryset = eligible_flags_for_experiments(
            self.project,
            search=params.get("search"),
            active=params.get("active"),
            created_by_ids=parse_created_by_ids(params["created_by_id"])
            if params.get("created_by_id")
            else None,
            order=params.get("order"),
            evaluation_runtime=params.get("evaluation_runtime"),
            has_evaluation_contexts=params.get("has_evaluation_contexts"),
        )
        results = FeatureFlagSerializer(
            queryset[offset : offset + limit], many=True, context=self.get_serializer_context()
        )
        return Response({"results": results.data, "count": queryset.count()})

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=False, methods=["get"], required_scopes=["experiment:read"])
    def stats(self, request: Request, *args, **kwargs) -> Response:
        """Experimentation velocity over the last 30 days."""
        return Response(experiment_velocity_stats(self.project))

    @extend_schema(responses=OpenApiTypes.OBJECT, parameters=RESOURCE_PAGE_PARAMETERS)
    @action(detail=True, methods=["get"], required_scopes=["experiment:read"])
    def activity(self, request: Request, *args, **kwargs) -> Response:
        """Activity of this experiment (without its saved-metric links)."""
        experiment = self.get_object()
        entries = item_activity(project=self.project, scope=EXPERIMENT_ACTIVITY_SCOPE, item_id=experiment.id)
        return activity_page_response(entries.exclude(detail__type="shared_metric"), request)


class ExperimentSavedMetricViewSet(
    VersionedResponseCacheMixin, BodylessActionsMixin, ProjectScopedViewSetMixin, viewsets.ModelViewSet
):
    """Shared metrics that experiments link to via `saved_metrics_ids`. DELETE is a hard delete."""

    scope_object = "experiment"
    serializer_class = ExperimentSavedMetricSerializer
    queryset = ExperimentSavedMetric.objects.all()

    @property
    def filterset_class(self) -> type[ExperimentSavedMetricFilter] | None:
        return ExperimentSavedMetricFilter if self.action == "list" else None

    def filter_queryset_for_action(self, queryset: QuerySet) -> QuerySet:
        return queryset.select_related("created_by").order_by("-created_at", "-id")

    def perform_create(self, serializer: ExperimentSavedMetricSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = saved_metric_create(
            project=self.project,
            user=self.request.user,
            name=data["name"],
            query=data["query"],
            description=data.get("description"),
            metadata=data.get("metadata"),
            tags=data.get("tags"),
        )

    def perform_update(self, serializer: ExperimentSavedMetricSerializer) -> None:
        serializer.instance = saved_metric_update(
            saved_metric=serializer.instance, user=self.request.user, changes=dict(serializer.validated_data)
        )

    def perform_destroy(self, instance: ExperimentSavedMetric) -> None:
        saved_metric_delete(saved_metric=instance, user=self.request.user)

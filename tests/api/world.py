"""Shared ground for the hostile-input and tenant-isolation matrices.

- `populate()` fills a project with one of everything the API can write to: experiments in every
  state, a standalone flag, a holdout, a saved metric linked to an experiment, a cohort, an approval
  policy and a pending change request.
- `api_routes()` lists every (route, method) the API router serves, so the matrices cover a new
  endpoint or action without anyone adding it here.
- `request_fields()` introspects the serializer that reads each route's body, so wrong-type cases
  are generated for every writable field, including fields added later.
- `database_fingerprint()` and `tenant_rows()` snapshot the database, to prove that a refused
  request changed nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import connection
from django.db.models import Model, Q
from django.utils import timezone
from rest_framework import serializers

from accounts.models import Organization, OrganizationMembership, Project, User
from approvals.models import ApprovalPolicy, ChangeRequest
from experiments.models import Experiment, ExperimentSavedMetric, ExperimentToSavedMetric
from experiments_api.routing import PROJECT_PREFIX
from experiments_api.urls import router
from flags.models import Cohort, FeatureFlag
from holdouts.models import ExperimentHoldout
from results.models import QueryRun
from tests.conftest import KeyedClient, keyed_client
from tests.experiments.helpers import mean_metric
from tests.factories import (
    CohortFactory,
    ExperimentFactory,
    ExperimentHoldoutFactory,
    ExperimentSavedMetricFactory,
    FeatureFlagFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
)

# The apps whose tables hold what the API reads and writes.
DOMAIN_APPS = ("accounts", "flags", "experiments", "holdouts", "approvals", "activity", "events", "results")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


# --- routes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One method of one URL pattern of the API router."""

    basename: str
    viewset: type
    action: str
    method: str
    detail: bool
    template: str
    schema: type | None = None

    @property
    def id(self) -> str:
        return f"{self.method} {self.basename}.{self.action}"

    @property
    def project_scoped(self) -> bool:
        return "{project}" in self.template

    def path(self, project: Any = None, pk: Any = None) -> str:
        return self.template.replace("{project}", str(project)).replace("{pk}", str(pk))


def api_routes() -> list[Route]:
    """Every (URL pattern, method) the API router serves, read from the router itself."""
    routes = []
    for prefix, viewset, basename in router.registry:
        resource = "/api/" + prefix.replace(PROJECT_PREFIX, "projects/{project}")
        for route in router.get_routes(viewset):
            template = (
                route.url.replace("{prefix}", resource.removeprefix("/"))
                .replace("{lookup}", "{pk}")
                .replace("{trailing_slash}", "/")
                .removeprefix("^")
                .removesuffix("$")
            )
            for method, action in route.mapping.items():
                if hasattr(viewset, action) and method in viewset.http_method_names:
                    routes.append(
                        Route(
                            basename,
                            viewset,
                            action,
                            method.upper(),
                            route.detail,
                            "/" + template,
                            route.initkwargs.get("schema"),
                        )
                    )
    return routes


def project_write_routes() -> list[Route]:
    return [route for route in api_routes() if route.project_scoped and route.method in WRITE_METHODS]


# --- request bodies ----------------------------------------------------------------------------


def request_serializer(route: Route, project: Project) -> serializers.Serializer | None:
    """The serializer that reads this route's body (None for routes that take no body), as the API
    schema documents it: an action's `@extend_schema(request=...)`, else the ViewSet's serializer."""
    if route.method == "DELETE":
        return None
    view = route.viewset()
    view.action = route.action
    view.request = None
    view.format_kwarg = None
    view.kwargs = {}
    schema = route.schema() if route.schema is not None else route.viewset.schema
    schema.view = view
    schema.method = route.method
    documented = schema.get_request_serializer()
    if documented is None:
        return None
    serializer_class = documented if isinstance(documented, type) else type(documented)
    return serializer_class(context={"project": project, "request": None})


def request_fields(route: Route, project: Project) -> dict[str, serializers.Field]:
    """The writable fields of the route's request body."""
    serializer = request_serializer(route, project)
    if serializer is None:
        return {}
    return {name: field for name, field in serializer.fields.items() if not field.read_only}


# JSON fields declare no type to DRF. Their shape comes from the model field's default when it is a
# dict or a list; the rest are listed here. A writable JSON field that is neither makes
# `test_every_json_field_has_a_known_shape` fail, so a new field cannot slip past the matrix.
JSON_FIELD_SHAPES: dict[tuple[str, str], tuple[type, ...]] = {
    ("ExperimentSerializer", "excluded_variants"): (list,),
    ("ExperimentSerializer", "saved_metrics_ids"): (list,),
    ("ExperimentSerializer", "primary_metrics_ordered_uuids"): (list,),
    ("ExperimentSerializer", "secondary_metrics_ordered_uuids"): (list,),
    ("ExperimentSavedMetricSerializer", "query"): (dict,),
    ("RecalculateTimeseriesSerializer", "metric"): (dict,),
    # Policy conditions are one condition object or a list of them (all must match).
    ("ApprovalPolicySerializer", "conditions"): (dict, list),
    ("QueryRequestSerializer", "query"): (dict,),
    ("QueryRequestSerializer", "refresh"): (bool, str),
}


def json_field_shape(field: serializers.JSONField) -> tuple[type, ...] | None:
    """The JSON types a JSON field accepts at its top level, or None if nobody has said."""
    serializer = field.parent
    declared = JSON_FIELD_SHAPES.get((type(serializer).__name__, field.field_name))
    if declared is not None:
        return declared
    model = getattr(getattr(serializer, "Meta", None), "model", None)
    if model is None:
        return None
    try:
        default = model._meta.get_field(field.source).default
    except FieldDoesNotExist:
        return None
    if default in (dict, list):
        return (default,)
    return None


# A value of each JSON type, including the falsy ones (validators written as `if not value` let
# those through).
JSON_TYPE_SAMPLES: dict[type, list[Any]] = {
    str: ["not the right type", ""],
    int: [12345, 0],
    bool: [True, False],
    list: [["not", "an", "object"], []],
    dict: [{"not": "a list"}, {}],
}


def wrong_type_values(field: serializers.Field) -> list[Any]:
    """JSON values of types the field must refuse. Raises for a field type nobody has described."""
    values: list[Any]
    if isinstance(field, serializers.BooleanField):
        values = ["maybe", 2, -1, [True], {"value": True}]
    elif isinstance(field, serializers.ChoiceField):
        values = ["no-such-choice", ["no-such-choice"], {"choice": 1}, True, 12345]
    elif isinstance(field, serializers.CharField):
        values = [["a", "list"], {"an": "object"}, True]
        if not field.allow_blank:
            values.append("")
    elif isinstance(field, serializers.IntegerField):
        values = ["twelve", 1.5, [1], {"id": 1}, True, "1e3"]
    elif isinstance(field, serializers.DateTimeField):
        values = ["not a date", "2024-13-45T25:61:00Z", 12345, [], {}, True]
    elif isinstance(field, serializers.DurationField):
        values = ["forever", [], {}, True]
    elif isinstance(field, serializers.DictField):
        values = ["a string", 12345, ["a", "list"], True]
    elif isinstance(field, serializers.ListField):
        values = ["a string", 12345, {"an": "object"}, True]
    elif isinstance(field, serializers.PrimaryKeyRelatedField):
        values = ["twelve", 1.5, [1], {"id": 1}, True]
    elif isinstance(field, serializers.JSONField):
        shape = json_field_shape(field)
        if shape is None:
            raise LookupError(f"{type(field.parent).__name__}.{field.field_name}: JSON shape unknown")
        values = [
            value for kind, samples in JSON_TYPE_SAMPLES.items() if kind not in shape for value in samples
        ]
    else:
        raise LookupError(f"No wrong-type values for {type(field).__name__} ({field.field_name})")
    if not field.allow_null:
        values.append(None)
    return values


# --- seeded data -------------------------------------------------------------------------------


@dataclass
class World:
    """One project (and a sibling in its organization) with one of everything."""

    project: Project
    sibling: Project
    owner: User
    api: KeyedClient
    draft: Experiment
    running: Experiment
    paused: Experiment
    stopped: Experiment
    archived: Experiment
    flag: FeatureFlag
    holdout: ExperimentHoldout
    saved_metric: ExperimentSavedMetric
    cohort: Cohort
    policy: ApprovalPolicy
    change_request: ChangeRequest
    query_run: QueryRun
    marker: str

    def experiments(self) -> list[Experiment]:
        return [self.draft, self.running, self.paused, self.stopped, self.archived]


def populate(project: Project, owner: User, api: KeyedClient, *, marker: str) -> World:
    """Seed `project` with one of everything; every name and key carries `marker`, so a response
    that shows any of them can be recognised."""
    now = timezone.now()
    started = now - timedelta(days=3)
    ended = now - timedelta(days=1)

    def experiment(state: str, **fields: Any) -> Experiment:
        flag = FeatureFlagFactory(
            project=project,
            key=f"{marker}-{state}-flag",
            name=f"{marker} {state} flag",
            active=fields.pop("flag_active", False),
        )
        return ExperimentFactory(
            project=project, name=f"{marker} {state} experiment", feature_flag=flag, **fields
        )

    draft = experiment("draft")
    running = experiment("running", start_date=started, flag_active=True)
    paused = experiment("paused", start_date=started, flag_active=False)
    stopped = experiment("stopped", start_date=started, end_date=ended, flag_active=True)
    archived = experiment("archived", start_date=started, end_date=ended, archived=True)
    gated = experiment("gated")

    saved_metric = ExperimentSavedMetricFactory(project=project, name=f"{marker} saved metric")
    ExperimentToSavedMetric.objects.create(
        experiment=running, saved_metric=saved_metric, metadata={"type": "primary"}
    )
    holdout = ExperimentHoldoutFactory(project=project, name=f"{marker} holdout")
    cohort = CohortFactory(project=project, name=f"{marker} cohort")
    flag = FeatureFlagFactory(project=project, key=f"{marker}-standalone-flag", name=f"{marker} flag")

    # A pending change request made through the gate, which its requester may also approve; the
    # policy is then disabled so that it gates nothing else.
    policy = ApprovalPolicy.objects.create(
        organization=project.organization,
        project=project,
        action_key="experiment.launch",
        approver_config={"quorum": 1, "users": [owner.id]},
        allow_self_approve=True,
    )
    response = api.post(f"/api/projects/{project.id}/experiments/{gated.id}/launch/")
    assert response.status_code == 409, response.content
    change_request = ChangeRequest.objects.get(pk=response.json()["change_request_id"])
    ApprovalPolicy.objects.filter(pk=policy.pk).update(enabled=False)
    policy.refresh_from_db()

    sibling = ProjectFactory(organization=project.organization, name=f"{marker} sibling project")
    query_run = QueryRun.objects.create(
        project=project,
        cache_key=f"{marker}-query".ljust(64, "0")[:64],
        query={"kind": "ExperimentExposureQuery", "experiment_id": running.id},
        query_async=True,
    )
    return World(
        project=project,
        sibling=sibling,
        owner=owner,
        api=api,
        draft=draft,
        running=running,
        paused=paused,
        stopped=stopped,
        archived=archived,
        flag=flag,
        holdout=holdout,
        saved_metric=saved_metric,
        cohort=cohort,
        policy=policy,
        change_request=change_request,
        query_run=query_run,
        marker=marker,
    )


def new_tenant(marker: str) -> World:
    """A fresh organization with one project, its owner (with an all-scopes key) and everything."""
    organization = Organization.objects.create(name=f"{marker} organization")
    project = ProjectFactory(organization=organization, name=f"{marker} project")
    owner = UserFactory(current_project=project, first_name=f"{marker}owner")
    MembershipFactory(organization=organization, user=owner, level=OrganizationMembership.Level.OWNER)
    return populate(project, owner, keyed_client(owner, project), marker=marker)


# --- what each write route acts on, and a request that succeeds there ---------------------------
# The hostile-input matrix sends every hostile variant of these requests; the isolation matrix
# sends them, unchanged, with another tenant's key.


@dataclass(frozen=True)
class Target:
    """The object a route acts on (None for list routes) and a body with which the request succeeds
    (None: the route takes no body)."""

    pk: Any
    body: dict[str, Any] | None


def policy_body(world: World, action_key: str) -> dict[str, Any]:
    return {"action_key": action_key, "approver_config": {"quorum": 1, "users": [world.owner.id]}}


FLAG_FILTERS = {"groups": [{"properties": [], "rollout_percentage": 50}]}
HOLDOUT_FILTERS = [{"properties": [], "rollout_percentage": 10}]
RECALCULATION = {"metric": mean_metric(uuid="00000000-0000-4000-8000-000000000001"), "fingerprint": "f" * 16}

TARGETS: dict[tuple[str, str], Callable[[World], Target]] = {
    ("experiment", "create"): lambda w: Target(None, {"name": "Probe", "feature_flag_key": "probe-flag"}),
    ("experiment", "update"): lambda w: Target(
        w.draft.id, {"name": "Renamed", "feature_flag_key": w.draft.feature_flag.key}
    ),
    ("experiment", "partial_update"): lambda w: Target(w.draft.id, {"name": "Renamed"}),
    ("experiment", "destroy"): lambda w: Target(w.draft.id, None),
    ("experiment", "launch"): lambda w: Target(w.draft.id, None),
    ("experiment", "pause"): lambda w: Target(w.running.id, None),
    ("experiment", "resume"): lambda w: Target(w.paused.id, None),
    ("experiment", "end"): lambda w: Target(w.running.id, {"conclusion": "won"}),
    ("experiment", "ship_variant"): lambda w: Target(w.running.id, {"variant_key": "test"}),
    ("experiment", "reset"): lambda w: Target(w.stopped.id, None),
    ("experiment", "archive"): lambda w: Target(w.stopped.id, {}),
    ("experiment", "unarchive"): lambda w: Target(w.archived.id, None),
    ("experiment", "duplicate"): lambda w: Target(w.draft.id, {"name": "Copy"}),
    ("experiment", "copy_to_project"): lambda w: Target(w.draft.id, {"target_team_id": w.sibling.id}),
    ("experiment", "create_exposure_cohort_for_experiment"): lambda w: Target(w.running.id, None),
    ("experiment", "recalculate_timeseries"): lambda w: Target(w.running.id, RECALCULATION),
    ("saved_metric", "create"): lambda w: Target(None, {"name": "Probe metric", "query": mean_metric()}),
    ("saved_metric", "update"): lambda w: Target(
        w.saved_metric.id, {"name": "Renamed metric", "query": mean_metric()}
    ),
    ("saved_metric", "partial_update"): lambda w: Target(w.saved_metric.id, {"name": "Renamed metric"}),
    ("saved_metric", "destroy"): lambda w: Target(w.saved_metric.id, None),
    ("experiment_holdout", "create"): lambda w: Target(
        None, {"name": "Probe holdout", "filters": HOLDOUT_FILTERS}
    ),
    ("experiment_holdout", "update"): lambda w: Target(
        w.holdout.id, {"name": "Renamed holdout", "filters": HOLDOUT_FILTERS}
    ),
    ("experiment_holdout", "partial_update"): lambda w: Target(w.holdout.id, {"name": "Renamed holdout"}),
    ("experiment_holdout", "destroy"): lambda w: Target(w.holdout.id, None),
    ("feature_flag", "create"): lambda w: Target(None, {"key": "probe-flag", "filters": FLAG_FILTERS}),
    ("feature_flag", "update"): lambda w: Target(w.flag.id, {"key": w.flag.key, "filters": FLAG_FILTERS}),
    ("feature_flag", "partial_update"): lambda w: Target(w.flag.id, {"name": "Renamed flag"}),
    ("feature_flag", "destroy"): lambda w: Target(w.flag.id, None),
    ("approval_policy", "create"): lambda w: Target(None, policy_body(w, "experiment.pause")),
    ("approval_policy", "update"): lambda w: Target(w.policy.id, policy_body(w, "experiment.launch")),
    ("approval_policy", "partial_update"): lambda w: Target(w.policy.id, {"allow_self_approve": False}),
    ("approval_policy", "destroy"): lambda w: Target(w.policy.id, None),
    ("change_request", "approve"): lambda w: Target(w.change_request.id, {"reason": "looks good"}),
    ("change_request", "reject"): lambda w: Target(w.change_request.id, {"reason": "not now"}),
    ("change_request", "cancel"): lambda w: Target(w.change_request.id, {"reason": "withdrawn"}),
    ("query", "create"): lambda w: Target(
        None,
        {"query": {"kind": "ExperimentExposureQuery", "experiment_id": w.running.id}, "refresh": "blocking"},
    ),
    ("query", "destroy"): lambda w: Target(w.query_run.id, None),
}


# --- snapshots ---------------------------------------------------------------------------------


def domain_models() -> list[type[Model]]:
    return [model for label in DOMAIN_APPS for model in apps.get_app_config(label).get_models()]


def database_fingerprint() -> dict[str, str]:
    """A digest of every row of every domain table, in one query. Equal fingerprints mean nothing
    was inserted, updated (`updated_at` moves on any save) or deleted."""
    selects = [
        f"SELECT '{table}', md5(coalesce(string_agg(row_text, '|' ORDER BY row_text), '')) "
        f'FROM (SELECT t::text AS row_text FROM "{table}" t) rows'
        for table in sorted({model._meta.db_table for model in domain_models()})
    ]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(selects))
        return dict(cursor.fetchall())


def changed_tables(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(table for table in before if before[table] != after.get(table))


# How a row of each domain model reaches the organization it belongs to. A row with a project or
# an organization belongs there; only rows with neither (personal API keys) go by their user.
TENANT_LOOKUPS = {
    "project": "project__organization",
    "organization": "organization",
    "experiment": "experiment__project__organization",
    "change_request": "change_request__organization",
    "rollup": "rollup__experiment__project__organization",
}
USER_LOOKUP = "user__organization_memberships__organization"


def tenant_filter(model: type[Model], organization: Organization) -> Q:
    """The rows of `model` that belong to `organization`."""
    if model is Organization:
        return Q(pk=organization.pk)
    if model is User:
        return Q(organization_memberships__organization=organization)
    names = {field.name for field in model._meta.get_fields()}
    condition = Q()
    for field_name, lookup in TENANT_LOOKUPS.items():
        if field_name in names:
            condition |= Q(**{lookup: organization})
    if not condition and "user" in names:
        condition = Q(**{USER_LOOKUP: organization})
    assert condition, f"{model.__name__}: no way to tell which organization a row belongs to"
    return condition


def tenant_rows(organization: Organization) -> dict[str, str]:
    """A digest per domain model of the rows that belong to `organization`: its projects and
    everything in them, its members and their keys."""
    snapshot = {}
    for model in domain_models():
        rows = (
            model._default_manager.filter(tenant_filter(model, organization))
            .distinct()
            .order_by("pk")
            .values()
        )
        snapshot[model.__name__] = hashlib.sha256(repr(list(rows)).encode()).hexdigest()
    return snapshot

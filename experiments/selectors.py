"""Experiment reads: the list and the detail at a fixed number of queries, PostHog's status filter
and ordering."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from django.db.models import BooleanField, Case, CharField, F, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce, Now, NullIf
from rest_framework.exceptions import ValidationError

from accounts.models import Project
from experiments.lifecycle import ExperimentStatus
from experiments.links import experiment_links, links_prefetch
from experiments.models import LEGACY_METRIC_KINDS, Experiment, ExperimentToSavedMetric
from experiments_api.parsers import json_value

ORDER_ALLOWLIST = frozenset(
    f"{prefix}{field}"
    for field in (
        "created_at",
        "created_by",
        "updated_at",
        "name",
        "start_date",
        "end_date",
        "duration",
        "status",
    )
    for prefix in ("", "-")
)
STATUS_ALIASES = {"complete": ExperimentStatus.STOPPED}
TRUE_VALUES = ("true", "1", "yes")


def experiment_queryset(project: Project, *, include_deleted: bool = False) -> QuerySet[Experiment]:
    """Experiments of a project with everything their representation needs, in fixed queries."""
    queryset = (
        Experiment.objects.filter(project=project)
        .select_related("feature_flag", "created_by", "holdout__created_by", "project")
        .prefetch_related(links_prefetch())
    )
    return queryset if include_deleted else queryset.filter(deleted=False)


def experiment_to_lock(project: Project, *, include_deleted: bool = False) -> QuerySet[Experiment]:
    """Experiments of a project as a write finds them before its service locks and re-reads the
    row: the row and its project (which the approval gate needs), nothing else."""
    queryset = Experiment.objects.filter(project=project).select_related("project")
    return queryset if include_deleted else queryset.filter(deleted=False)


def experiment_reference(project: Project, experiment_id: Any) -> Experiment:
    """The experiment `experiment_id` (as the URL gives it) names in `project`, not read: only its id
    and project are loaded, the rest deferred, for a service that reads the row itself under its
    lock (`locking.lock_experiment_and_flag`, which raises `Experiment.DoesNotExist` when the
    project has no such experiment). An id that cannot be one raises `Experiment.DoesNotExist`."""
    try:
        pk = Experiment._meta.pk.to_python(experiment_id)
    except DjangoValidationError:
        raise Experiment.DoesNotExist from None
    experiment = Experiment.from_db(Experiment.objects.db, ["id", "project_id"], [pk, project.id])
    experiment.project = project
    return experiment


def parse_created_by_ids(raw: str) -> list[int]:
    """`created_by_id` as PostHog accepts it: `3`, `[1,2]` or `1,3`. Unparseable parts are ignored."""
    raw = raw.strip()
    values: list[Any]
    if raw.startswith("["):
        try:
            parsed = json_value(raw)
        except ValueError:
            return []
        values = parsed if isinstance(parsed, list) else [parsed]
    else:
        values = raw.split(",")
    ids = []
    for value in values:
        try:
            number = int(str(value).strip())
        except ValueError:
            continue
        if 0 < number < 2**63:
            ids.append(number)
    return ids


def filter_by_status(queryset: QuerySet[Experiment], raw_status: str) -> QuerySet[Experiment]:
    """`draft`, `running` (flag active), `paused` (flag inactive), `stopped`/`complete`; `all` and
    unknown values mean no filter."""
    normalized = raw_status.lower()
    status = STATUS_ALIASES.get(normalized, normalized)
    started_not_ended = Q(start_date__isnull=False, end_date__isnull=True)
    if status == ExperimentStatus.DRAFT:
        return queryset.filter(start_date__isnull=True)
    if status == ExperimentStatus.RUNNING:
        return queryset.filter(started_not_ended, feature_flag__active=True)
    if status == ExperimentStatus.PAUSED:
        return queryset.filter(started_not_ended, feature_flag__active=False)
    if status == ExperimentStatus.STOPPED:
        return queryset.filter(start_date__isnull=False, end_date__isnull=False)
    return queryset


def order_experiments(queryset: QuerySet[Experiment], order: str | None) -> QuerySet[Experiment]:
    if not order:
        return queryset.order_by("-created_at", "-id")
    if order not in ORDER_ALLOWLIST:
        raise ValidationError(f"Invalid order field: '{order}'")
    descending = order.startswith("-")
    field = order.lstrip("-")
    if field == "duration":
        queryset = queryset.annotate(
            sort_key=Case(
                When(start_date__isnull=True, then=Value(None)),
                When(end_date__isnull=False, then=F("end_date") - F("start_date")),
                default=Now() - F("start_date"),
            )
        )
    elif field == "status":
        queryset = queryset.annotate(
            sort_key=Case(
                When(start_date__isnull=True, then=Value(0)),
                When(end_date__isnull=True, then=Value(1)),
                default=Value(2),
            )
        )
    elif field == "created_by":
        queryset = queryset.annotate(
            sort_key=Coalesce(
                NullIf(F("created_by__first_name"), Value("")),
                F("created_by__email"),
                output_field=CharField(),
            )
        )
    else:
        return queryset.order_by(order, "-id" if descending else "id")
    sort = F("sort_key").desc(nulls_last=True) if descending else F("sort_key").asc(nulls_last=True)
    return queryset.order_by(sort, "-id" if descending else "id")


# Columns the list representation does not show; not loading them keeps a page of 100 cheap.
LIST_DEFERRED_FIELDS = (
    "filters",
    "secondary_metrics",
    "exposure_criteria",
    "stats_config",
    "scheduling_config",
    "variants",
    "primary_metrics_ordered_uuids",
    "secondary_metrics_ordered_uuids",
)


def with_legacy_metrics_flag(queryset: QuerySet[Experiment]) -> QuerySet[Experiment]:
    """On PostgreSQL, decide in SQL whether inline metrics use a retired kind, so the (large)
    metric columns need not be loaded for a list. Other databases load them instead."""
    if connection.vendor != "postgresql":
        return queryset
    legacy = Q()
    for kind in LEGACY_METRIC_KINDS:
        legacy |= Q(metrics__contains=[{"kind": kind}]) | Q(metrics_secondary__contains=[{"kind": kind}])
    return queryset.annotate(
        uses_legacy_metrics=Case(
            When(legacy, then=Value(True)), default=Value(False), output_field=BooleanField()
        )
    ).defer("metrics", "metrics_secondary")


def experiment_list(project: Project) -> QuerySet[Experiment]:
    """The project's experiments as the list shows them, in a fixed number of queries; deleted are
    never shown. `experiments/filters.py` applies the list's filters and ordering."""
    return with_legacy_metrics_flag(
        Experiment.objects.filter(project=project, deleted=False)
        .select_related("feature_flag", "created_by", "holdout__created_by")
        .prefetch_related(links_prefetch())
        .defer(*LIST_DEFERRED_FIELDS)
    )


def is_legacy(experiment: Experiment, links: list[ExperimentToSavedMetric] | None = None) -> bool:
    """An experiment using PostHog's retired metric kinds (inline or through a saved metric).
    A list query may have computed the inline part in SQL (`uses_legacy_metrics`)."""
    annotated = getattr(experiment, "uses_legacy_metrics", None)
    if annotated:
        return True
    for metric in (
        [] if annotated is False else [*(experiment.metrics or []), *(experiment.metrics_secondary or [])]
    ):
        if isinstance(metric, dict) and metric.get("kind") in LEGACY_METRIC_KINDS:
            return True
    if links is None:
        links = experiment_links(experiment)
    return any((link.saved_metric.query or {}).get("kind") in LEGACY_METRIC_KINDS for link in links)

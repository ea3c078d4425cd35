"""Reads of flags and cohorts that need more than a plain filter: fixed query counts for lists."""

from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError

from accounts.models import Project
from flags.hooks import flag_experiments
from flags.models import Cohort, FeatureFlag


def flag_queryset(project: Project) -> QuerySet[FeatureFlag]:
    return (
        FeatureFlag.objects.filter(project=project)
        .select_related("created_by", "last_modified_by")
        .prefetch_related(flag_experiments().live_experiments_prefetch())
    )


def flag_list(project: Project) -> QuerySet[FeatureFlag]:
    """Live flags of a project, newest first (the list's query parameters are `flags.filters`)."""
    return flag_queryset(project).filter(deleted=False).order_by("-created_at", "-id")


def cohort_queryset(project: Project) -> QuerySet[Cohort]:
    return (
        Cohort.objects.filter(project=project, deleted=False)
        .select_related("created_by")
        .prefetch_related(flag_experiments().cohort_experiments_prefetch())
        .order_by("-created_at", "-id")
    )


ELIGIBLE_ORDER_ALLOWLIST = frozenset(
    f"{prefix}{field}" for field in ("created_at", "key", "name") for prefix in ("", "-")
)


def eligible_flags_for_experiments(
    project: Project,
    *,
    search: str | None = None,
    active: str | None = None,
    created_by_ids: list[int] | None = None,
    order: str | None = None,
    evaluation_runtime: str | None = None,
    has_evaluation_contexts: str | None = None,
) -> QuerySet[FeatureFlag]:
    """Live multivariate flags an experiment can run on: at least two variants, `control` first."""
    queryset = flag_queryset(project).filter(
        deleted=False,
        filters__multivariate__variants__0__key="control",
        filters__multivariate__variants__1__isnull=False,
    )
    if search:
        queryset = queryset.filter(Q(key__icontains=search) | Q(name__icontains=search))
    if active is not None:
        queryset = queryset.filter(active=active.lower() == "true")
    if created_by_ids:
        queryset = queryset.filter(created_by_id__in=created_by_ids)
    if evaluation_runtime:
        queryset = queryset.filter(evaluation_runtime=evaluation_runtime)
    if has_evaluation_contexts is not None and has_evaluation_contexts.lower() in ("true", "1", "yes"):
        # This server has no evaluation contexts, so no flag has any.
        queryset = queryset.none()
    if order and order not in ELIGIBLE_ORDER_ALLOWLIST:
        raise ValidationError(f"Invalid order field: '{order}'")
    return queryset.order_by(order or "-created_at", "id")

"""Reads of flags and cohorts that need more than a plain filter: fixed query counts for lists."""

from django.db.models import Prefetch, Q, QuerySet

from accounts.models import Project
from flags.models import Cohort, FeatureFlag


def live_experiments_prefetch() -> Prefetch:
    from experiments.models import Experiment

    return Prefetch(
        "experiment_set",
        queryset=Experiment.objects.filter(deleted=False).only("id", "feature_flag_id").order_by("id"),
        to_attr="live_experiments",
    )


def flag_queryset(project: Project) -> QuerySet[FeatureFlag]:
    return (
        FeatureFlag.objects.filter(project=project)
        .select_related("created_by", "last_modified_by")
        .prefetch_related(live_experiments_prefetch())
    )


def flag_list(
    project: Project, *, search: str | None = None, active: str | None = None
) -> QuerySet[FeatureFlag]:
    """Live flags of a project, newest first, optionally matching `search` (key or name) and `active`."""
    queryset = flag_queryset(project).filter(deleted=False)
    if search:
        queryset = queryset.filter(Q(key__icontains=search) | Q(name__icontains=search))
    if active is not None and active.lower() in ("true", "false"):
        queryset = queryset.filter(active=active.lower() == "true")
    return queryset.order_by("-created_at", "-id")


def cohort_queryset(project: Project) -> QuerySet[Cohort]:
    from experiments.models import Experiment

    return (
        Cohort.objects.filter(project=project, deleted=False)
        .select_related("created_by")
        .prefetch_related(
            Prefetch(
                "experiment_set",
                queryset=Experiment.objects.only("id", "exposure_cohort_id").order_by("id"),
                to_attr="linked_experiments",
            )
        )
        .order_by("-created_at", "-id")
    )

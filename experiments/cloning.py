"""Duplicating an experiment, in its project or into another project of the same organization."""

from copy import deepcopy

from rest_framework import exceptions
from rest_framework.exceptions import ValidationError

from accounts.models import PersonalAPIKey, Project, User
from experiments.metric_schema import validate_metrics
from experiments.metrics import regenerate_metric_uuids, remap_ordering
from experiments.models import Experiment
from experiments.selectors import is_legacy
from experiments.services import experiment_create
from experiments.validation import validate_exposure_criteria, validate_parameter_variants
from flags.models import FeatureFlag

DUPLICATE_LEGACY = "Duplication is not supported for experiments using legacy metrics."
COPY_LEGACY = "Copying is not supported for experiments using legacy metrics."
TARGET_TEAM_NOT_FOUND = "Target team not found."
NO_WRITE_ACCESS_TO_TARGET = "You do not have write access to the target project."


NAME_MAX_LENGTH = Experiment._meta.get_field("name").max_length


def clone_name(source: Experiment, project: Project, name: str | None) -> str:
    """The given name, else "<name> (Copy)", then "(Copy) 1", "(Copy) 2", … until unused. A long
    source name is shortened so the suffix still fits the name column."""
    if name:
        return name

    def with_suffix(suffix: str) -> str:
        return source.name[: NAME_MAX_LENGTH - len(suffix)] + suffix

    # Every candidate starts with this much of the source name, whatever the counter reaches.
    common_start = source.name[: NAME_MAX_LENGTH - 32]
    taken = set(
        Experiment.objects.filter(project=project, deleted=False, name__startswith=common_start).values_list(
            "name", flat=True
        )
    )
    candidate, counter = with_suffix(" (Copy)"), 1
    while candidate in taken:
        candidate = with_suffix(f" (Copy) {counter}")
        counter += 1
    return candidate


def experiment_clone(
    *,
    source: Experiment,
    user: User | None,
    target_project: Project,
    feature_flag_key: str | None = None,
    name: str | None = None,
) -> Experiment:
    """A new draft copying the source's setup: same key shares the source flag, the key of another
    existing flag reuses that flag (and its variants), a new key creates an inactive flag with the
    source's variants, payloads and continuity. Metric uuids are regenerated; holdout, dates,
    conclusion, exposure cohort and results are not copied. Saved-metric links are copied within
    the same project only."""
    is_cross_project = target_project.id != source.project_id
    source_flag = source.feature_flag
    key = feature_flag_key if feature_flag_key is not None else source.feature_flag_key

    parameters = deepcopy(source.parameters) if isinstance(source.parameters, dict) else {}
    existing_flag = FeatureFlag.objects.filter(project=target_project, key=key, deleted=False).first()
    if existing_flag is not None:
        if existing_flag.variants:
            parameters["feature_flag_variants"] = deepcopy(existing_flag.variants)
    else:
        parameters["feature_flag_variants"] = deepcopy(source_flag.variants)
        if (source_flag.filters or {}).get("payloads"):
            parameters["feature_flag_payloads"] = deepcopy(source_flag.filters["payloads"])
        parameters["ensure_experience_continuity"] = bool(source_flag.ensure_experience_continuity)

    if parameters.get("feature_flag_variants"):
        validate_parameter_variants(parameters["feature_flag_variants"])
    validate_exposure_criteria(source.exposure_criteria)
    validate_metrics(source.metrics)
    validate_metrics(source.metrics_secondary)

    metrics, primary_remap = regenerate_metric_uuids(source.metrics)
    metrics_secondary, secondary_remap = regenerate_metric_uuids(source.metrics_secondary)
    saved_metrics_ids = None
    if not is_cross_project:
        saved_metrics_ids = [
            {"id": link.saved_metric_id, "metadata": link.metadata}
            for link in source.experimenttosavedmetric_set.order_by("created_at", "id")
        ] or None

    return experiment_create(
        project=target_project,
        user=user,
        name=clone_name(source, target_project, name),
        feature_flag_key=key,
        description=source.description or "",
        type=source.type or Experiment.Type.PRODUCT,
        parameters=parameters,
        running_time_calculation=deepcopy(source.running_time_calculation),
        filters=deepcopy(source.filters),
        metrics=metrics,
        metrics_secondary=metrics_secondary,
        stats_config=deepcopy(source.stats_config),
        scheduling_config=deepcopy(source.scheduling_config),
        exposure_criteria=deepcopy(source.exposure_criteria),
        saved_metrics_ids=saved_metrics_ids,
        primary_metrics_ordered_uuids=remap_ordering(source.primary_metrics_ordered_uuids, primary_remap),
        secondary_metrics_ordered_uuids=remap_ordering(
            source.secondary_metrics_ordered_uuids, secondary_remap
        ),
        only_count_matured_users=source.only_count_matured_users,
    )


def experiment_duplicate(
    *, source: Experiment, user: User | None, feature_flag_key: str | None = None, name: str | None = None
) -> Experiment:
    """Duplicate within the source's project. Refused for experiments using legacy metrics."""
    if is_legacy(source):
        raise ValidationError(DUPLICATE_LEGACY)
    return experiment_clone(
        source=source, user=user, target_project=source.project, feature_flag_key=feature_flag_key, name=name
    )


def resolve_copy_target(*, source: Experiment, target_team_id: int, key: PersonalAPIKey | None) -> Project:
    """Another project of the source's organization that the caller may write to."""
    target = Project.objects.filter(pk=target_team_id, organization_id=source.project.organization_id).first()
    if target is None:
        raise exceptions.NotFound(TARGET_TEAM_NOT_FOUND)
    if key is not None and key.scoped_teams and target.id not in key.scoped_teams:
        raise exceptions.PermissionDenied(NO_WRITE_ACCESS_TO_TARGET)
    return target


def experiment_copy_to_project(
    *,
    source: Experiment,
    user: User | None,
    target_team_id: int,
    key: PersonalAPIKey | None = None,
    feature_flag_key: str | None = None,
    name: str | None = None,
) -> Experiment:
    """Copy into another project of the same organization, as a new draft with an inactive flag."""
    if is_legacy(source):
        raise ValidationError(COPY_LEGACY)
    target = resolve_copy_target(source=source, target_team_id=target_team_id, key=key)
    return experiment_clone(
        source=source, user=user, target_project=target, feature_flag_key=feature_flag_key, name=name
    )

from typing import Any

from accounts.access import user_access_level
from accounts.representations import user_basic
from experiments.flag_config import flag_config_projection
from experiments.lifecycle import experiment_status
from experiments.models import Experiment, ExperimentToSavedMetric
from experiments.selectors import experiment_links, is_legacy
from experiments_api.representation import api_datetime
from flags.representations import minimal_flag
from holdouts.representations import holdout_body


def saved_metric_link(link: ExperimentToSavedMetric) -> dict[str, Any]:
    return {
        "id": link.id,
        "experiment": link.experiment_id,
        "saved_metric": link.saved_metric_id,
        "metadata": link.metadata,
        "created_at": api_datetime(link.created_at),
        "query": link.saved_metric.query,
        "name": link.saved_metric.name,
    }


def saved_metrics_ids_of(links: list[ExperimentToSavedMetric]) -> list[dict[str, Any]] | None:
    """The links as `saved_metrics_ids` takes them, so an experiment read and sent back whole keeps
    its saved metrics; null when there are none, as PostHog renders it."""
    return [{"id": link.saved_metric_id, "metadata": link.metadata} for link in links] or None


def experiment_basic(experiment: Experiment, *, user_id: int | None, membership_level: int) -> dict[str, Any]:
    """The list representation: no metric definitions. `parameters` shows the stored parameters
    with the flag's live configuration projected over them."""
    flag = experiment.feature_flag
    stored = experiment.parameters if isinstance(experiment.parameters, dict) else {}
    links = experiment_links(experiment)
    return {
        "id": experiment.id,
        "name": experiment.name,
        "description": experiment.description,
        "start_date": api_datetime(experiment.start_date),
        "end_date": api_datetime(experiment.end_date),
        "feature_flag_key": experiment.feature_flag_key,
        "feature_flag": minimal_flag(flag),
        "holdout": holdout_body(experiment.holdout),
        "exposure_cohort": experiment.exposure_cohort_id,
        "parameters": {**stored, **flag_config_projection(flag)},
        "running_time_calculation": experiment.running_time_calculation,
        "excluded_variants": experiment.excluded_variants,
        "archived": experiment.archived,
        "deleted": experiment.deleted,
        "created_by": user_basic(experiment.created_by),
        "created_at": api_datetime(experiment.created_at),
        "updated_at": api_datetime(experiment.updated_at),
        "type": experiment.type,
        "conclusion": experiment.conclusion,
        "conclusion_comment": experiment.conclusion_comment,
        "status": experiment_status(experiment).value,
        "saved_metrics": [saved_metric_link(link) for link in links],
        "saved_metrics_ids": saved_metrics_ids_of(links),
        "is_legacy": is_legacy(experiment, links),
        "user_access_level": (
            user_access_level(
                user_id=user_id, membership_level=membership_level, created_by_id=experiment.created_by_id
            )
            if user_id is not None
            else None
        ),
    }


def experiment_full(experiment: Experiment, *, user_id: int | None, membership_level: int) -> dict[str, Any]:
    """The full experiment, for create, retrieve, update and the lifecycle actions."""
    body = experiment_basic(experiment, user_id=user_id, membership_level=membership_level)
    body.update(
        {
            "holdout_id": experiment.holdout_id,
            "secondary_metrics": experiment.secondary_metrics,
            "filters": experiment.filters,
            "exposure_criteria": experiment.exposure_criteria,
            "metrics": experiment.metrics,
            "metrics_secondary": experiment.metrics_secondary,
            "stats_config": experiment.stats_config,
            "scheduling_config": experiment.scheduling_config,
            "primary_metrics_ordered_uuids": experiment.primary_metrics_ordered_uuids,
            "secondary_metrics_ordered_uuids": experiment.secondary_metrics_ordered_uuids,
            "only_count_matured_users": experiment.only_count_matured_users,
            "exposure_preaggregation_enabled": experiment.exposure_preaggregation_enabled,
        }
    )
    return body

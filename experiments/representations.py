from datetime import datetime
from typing import Any

from accounts.access import user_access_level
from accounts.representations import user_basic
from experiments.fields import AS_STORED_IN_DETAIL_ONLY, AS_STORED_IN_LIST, DETAIL_FIELDS, LIST_FIELDS
from experiments.flag_config import flag_config_projection
from experiments.lifecycle import experiment_status
from experiments.links import experiment_links
from experiments.models import Experiment, ExperimentToSavedMetric
from experiments.selectors import is_legacy
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


def as_stored(experiment: Experiment, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields rendered as the model stores them (datetimes in the API's form)."""
    values = {name: getattr(experiment, name) for name in names}
    return {
        name: api_datetime(value) if isinstance(value, datetime) else value for name, value in values.items()
    }


def experiment_basic(experiment: Experiment, *, user_id: int | None, membership_level: int) -> dict[str, Any]:
    """The list representation: no metric definitions. `parameters` shows the stored parameters
    with the flag's live configuration projected over them."""
    flag = experiment.feature_flag
    stored = experiment.parameters if isinstance(experiment.parameters, dict) else {}
    links = experiment_links(experiment)
    computed = {
        "feature_flag_key": experiment.feature_flag_key,
        "feature_flag": minimal_flag(flag),
        "holdout": holdout_body(experiment.holdout),
        "exposure_cohort": experiment.exposure_cohort_id,
        "parameters": {**stored, **flag_config_projection(flag)},
        "created_by": user_basic(experiment.created_by),
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
    values = {**as_stored(experiment, AS_STORED_IN_LIST), **computed}
    return {name: values[name] for name in LIST_FIELDS}


def experiment_full(experiment: Experiment, *, user_id: int | None, membership_level: int) -> dict[str, Any]:
    """The full experiment, for create, retrieve, update and the lifecycle actions."""
    values = {
        **experiment_basic(experiment, user_id=user_id, membership_level=membership_level),
        **as_stored(experiment, AS_STORED_IN_DETAIL_ONLY),
    }
    return {name: values[name] for name in DETAIL_FIELDS}

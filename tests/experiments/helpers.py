"""Small builders shared by the experiment API tests: request bodies, error envelopes, DB snapshots."""

from typing import Any

from django.forms.models import model_to_dict

from activity.models import ActivityLog
from experiments.models import Experiment
from flags.models import FeatureFlag


def mean_metric(event: str = "$pageview", **extra: Any) -> dict[str, Any]:
    """A minimal valid `ExperimentMetric` of type mean on one event."""
    return {
        "kind": "ExperimentMetric",
        "metric_type": "mean",
        "source": {"kind": "EventsNode", "event": event},
        **extra,
    }


def variants(*pairs: tuple[str, int], percent_key: str = "split_percent") -> list[dict[str, Any]]:
    """`parameters.feature_flag_variants` from (key, percentage) pairs."""
    return [{"key": key, percent_key: share} for key, share in pairs]


def validation_error(detail: str, attr: str | None = None, code: str = "invalid_input") -> dict[str, Any]:
    return {"type": "validation_error", "code": code, "detail": detail, "attr": attr}


NOT_FOUND = {"type": "invalid_request", "code": "not_found", "detail": "Not found.", "attr": None}


def create_experiment(api, **body: Any) -> dict[str, Any]:
    """POST an experiment (name and a fresh flag key by default) and return the 201 body."""
    body.setdefault("name", "An experiment")
    body.setdefault(
        "feature_flag_key", f"exp-flag-{Experiment.objects.count() + FeatureFlag.objects.count()}"
    )
    response = api.post(api.url("experiments/"), body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def flag_for(experiment_id: int) -> FeatureFlag:
    return Experiment.objects.select_related("feature_flag").get(pk=experiment_id).feature_flag


def db_state(experiment_id: int) -> dict[str, Any]:
    """Everything a write could change: the experiment row, its flag row and the activity count."""
    experiment = Experiment.objects.get(pk=experiment_id)
    flag = FeatureFlag.objects.get(pk=experiment.feature_flag_id)
    return {
        "experiment": {**model_to_dict(experiment), "updated_at": experiment.updated_at},
        "flag": {**model_to_dict(flag), "updated_at": flag.updated_at},
        "links": list(experiment.experimenttosavedmetric_set.values("saved_metric_id", "metadata")),
        "activity": ActivityLog.objects.count(),
    }

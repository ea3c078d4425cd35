"""The metrics recalculation job, and which experiments the periodic refresh recalculates.

A metrics recalculation computes every metric of an experiment, and its exposures (per-variant
counts per day, the sample-ratio check), as of one cutoff (`query_to`), so all the numbers a reader
sees belong together. Metrics already stored for that cutoff are skipped, so a
retried job only computes what is missing.
"""

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from experiments.models import Experiment, ExperimentMetricResult, ExperimentMetricsRecalculation
from experiments.recalculations import (
    experiment_metric_definitions,
    metrics_recalculation_finish,
    metrics_recalculation_request,
    metrics_recalculation_start,
    metrics_recalculation_store_metric,
    project_timezone_of,
    timeseries_refresh_request,
)
from results import services
from results.timeseries import failure_message, validation_message

# Running experiments are refreshed once a day, at this hour of their project's local time.
DAILY_REFRESH_LOCAL_HOUR = 0


def metrics_recalculation_run(*, recalculation_id: str, final_attempt: bool) -> None:
    """Compute each metric not stored yet for the recalculation's cutoff, then close the run.
    A metric the engine refuses fails alone with its reason; any other error is recorded and
    re-raised for the queue to retry, failing the run on the last attempt."""
    recalculation = metrics_recalculation_start(recalculation_id=recalculation_id)
    if recalculation is None:
        return
    experiment = recalculation.experiment
    stored = set(
        ExperimentMetricResult.objects.filter(
            experiment=experiment, query_to=recalculation.query_to, query_id=str(recalculation.id)
        ).values_list("metric_uuid", flat=True)
    )
    try:
        for metric in recalculation.metrics:
            if metric["uuid"] in stored:
                continue
            try:
                result = services.experiment_metric_result(
                    experiment=experiment, metric=metric, as_of=recalculation.query_to
                )
            except ValidationError as error:
                metrics_recalculation_store_metric(
                    recalculation=recalculation,
                    metric=metric,
                    result=None,
                    error_message=validation_message(error),
                )
                continue
            metrics_recalculation_store_metric(recalculation=recalculation, metric=metric, result=result)
        try:
            exposures = services.experiment_exposure_result(
                experiment=experiment, as_of=recalculation.query_to
            )
        except ValidationError:
            exposures = None
    except Exception as error:
        metrics_recalculation_finish(
            recalculation_id=recalculation_id, error_message=failure_message(error), final=final_attempt
        )
        raise
    metrics_recalculation_finish(recalculation_id=recalculation_id, exposures=exposures)


def experiments_due_for_refresh(now: datetime) -> QuerySet[Experiment]:
    """Running experiments (started, not ended, not archived or deleted) whose project's local
    clock is in the daily refresh hour at `now`."""
    running = Experiment.objects.filter(
        start_date__isnull=False, start_date__lte=now, end_date__isnull=True, archived=False, deleted=False
    ).select_related("project")
    due = [
        experiment.pk
        for experiment in running
        if now.astimezone(project_timezone_of(experiment)).hour == DAILY_REFRESH_LOCAL_HOUR
    ]
    return Experiment.objects.filter(pk__in=due).select_related("project")


def experiment_refresh(*, experiment: Experiment, trigger: str) -> ExperimentMetricsRecalculation | None:
    """Queue a fresh metrics recalculation of the experiment and extend the timeseries someone has
    asked for with the days since. Returns the new recalculation, or None when one is already
    active or the experiment has no metrics."""
    for metric in experiment_metric_definitions(experiment):
        timeseries_refresh_request(experiment=experiment, metric=metric)
    try:
        recalculation, created = metrics_recalculation_request(experiment=experiment, trigger=trigger)
    except ValidationError:
        return None
    return recalculation if created else None


def refresh_running_experiments(*, now: datetime | None = None) -> int:
    """The periodic refresh: every running experiment in its project's refresh hour. Returns how
    many recalculations were queued."""
    now = now or timezone.now()
    queued = 0
    for experiment in experiments_due_for_refresh(now):
        if experiment_refresh(
            experiment=experiment, trigger=ExperimentMetricsRecalculation.Trigger.AUTO_REFRESH
        ):
            queued += 1
    return queued

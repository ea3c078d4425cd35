"""Recalculations of experiment results: requests, their states, and where their results are kept.

Two kinds, both PostHog's:
- a timeseries recalculation computes one metric's cumulative result at the end of every day of the
  experiment (`recalculate_timeseries/`, read by `timeseries_results/`);
- a metrics recalculation computes every metric of the experiment once, as of a cutoff
  (`metrics_recalculation/`, read by `metrics_recalculation/latest/` and `/{id}/`).

Each moves pending → in_progress → completed | failed, and at most one of a kind is active per
experiment (and fingerprint), which the database guarantees. This module owns those states; the
results app's worker does the computing and registers itself here as the queue (a lower layer
cannot import it), so a request and its job are committed in the same transaction.
"""

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError

from accounts.models import User
from experiments.metrics import compute_metric_fingerprint
from experiments.models import (
    Experiment,
    ExperimentMetricResult,
    ExperimentMetricsRecalculation,
    ExperimentTimeseriesRecalculation,
)
from experiments_api.representation import api_datetime

RecalculationModel = TypeVar(
    "RecalculationModel", ExperimentTimeseriesRecalculation, ExperimentMetricsRecalculation
)

CANNOT_RECALCULATE_DRAFT_METRICS = "Cannot recalculate metrics for experiment that hasn't started"
NO_COMPLETED_RECALCULATION = "No completed recalculation found"
RECALCULATION_NOT_FOUND = "Recalculation not found"
EXPERIMENT_METRIC_KIND = "ExperimentMetric"


class RecalculationQueue(Protocol):
    """Where recalculation requests are handed to workers. `enqueue_*` runs inside the transaction
    that creates the request, so either both are committed or neither."""

    def enqueue_timeseries(self, recalculation: ExperimentTimeseriesRecalculation) -> None: ...

    def enqueue_metrics(self, recalculation: ExperimentMetricsRecalculation) -> None: ...


_queue: RecalculationQueue | None = None


def register_recalculation_queue(queue: RecalculationQueue | None) -> None:
    """Called by the results app when it is ready (and only when a task queue is configured)."""
    global _queue
    _queue = queue


def recalculation_queue() -> RecalculationQueue | None:
    return _queue


def project_timezone_of(experiment: Experiment) -> ZoneInfo:
    try:
        return ZoneInfo(experiment.project.timezone or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def end_of_day(day, tz: ZoneInfo) -> datetime:
    """The first instant of the next day in `tz`: a cumulative result "as of the end of `day`"."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)


def experiment_metric_definitions(experiment: Experiment) -> list[dict[str, Any]]:
    """Every metric of the experiment, primary then secondary, inline then saved, each carrying its
    `uuid` and `fingerprint` (saved metrics get theirs computed here, as PostHog does on read)."""
    stats_method = (experiment.stats_config or {}).get("method") or "bayesian"
    definitions: list[dict[str, Any]] = []
    for metric in [*(experiment.metrics or []), *(experiment.metrics_secondary or [])]:
        if isinstance(metric, dict) and metric.get("uuid"):
            definitions.append(metric)
    links = experiment.experimenttosavedmetric_set.select_related("saved_metric").order_by("created_at", "id")
    for link in links:
        query = link.saved_metric.query
        if not isinstance(query, dict) or not query.get("uuid"):
            continue
        definitions.append(
            {
                **query,
                "fingerprint": compute_metric_fingerprint(
                    query,
                    start_date=experiment.start_date,
                    stats_method=stats_method,
                    exposure_criteria=experiment.exposure_criteria,
                    only_count_matured_users=experiment.only_count_matured_users,
                    excluded_variants=experiment.excluded_variants,
                ),
            }
        )
    return definitions


def store_metric_result(
    recalculation: ExperimentTimeseriesRecalculation | ExperimentMetricsRecalculation,
    *,
    metric_uuid: str,
    fingerprint: str | None,
    query_to: datetime,
    result: dict[str, Any] | None,
    error_message: str | None,
) -> None:
    """Store (or replace) a metric's result as of `query_to`, computed by `recalculation`; with an
    `error_message` it is a failed result."""
    ExperimentMetricResult.objects.update_or_create(
        experiment_id=recalculation.experiment_id,
        metric_uuid=metric_uuid,
        query_to=query_to,
        defaults={
            "fingerprint": fingerprint,
            "query_from": recalculation.experiment.start_date,
            "status": (
                ExperimentMetricResult.Status.FAILED
                if error_message
                else ExperimentMetricResult.Status.COMPLETED
            ),
            "result": result,
            "error_message": error_message,
            "completed_at": timezone.now(),
            "query_id": str(recalculation.id),
        },
    )


def lock_active(model: type[RecalculationModel], recalculation_id: str) -> RecalculationModel | None:
    """The recalculation with its row locked, or None when it is gone or already finished."""
    recalculation = model.objects.select_for_update().filter(pk=recalculation_id).first()
    if recalculation is None or recalculation.status not in model.ACTIVE_STATUSES:
        return None
    return recalculation


def recalculation_results(recalculation: ExperimentMetricsRecalculation) -> QuerySet[ExperimentMetricResult]:
    """The stored results of a metrics recalculation's metrics as of its cutoff."""
    return ExperimentMetricResult.objects.filter(
        experiment_id=recalculation.experiment_id,
        query_to=recalculation.query_to,
        metric_uuid__in=recalculation.metric_uuids,
    )


# --- timeseries recalculations (the request side lives in experiments/results.py) ---


def recalculation_attempt_start(
    model: type[RecalculationModel], recalculation_id: str
) -> RecalculationModel | None:
    """Mark a recalculation (timeseries or metrics) in progress for one more attempt, under its row
    lock. Returns None when it is gone or already finished (a job delivered twice, or superseded)."""
    with transaction.atomic():
        recalculation = (
            model.objects.select_for_update()
            .select_related("experiment__project")
            .filter(pk=recalculation_id, status__in=model.ACTIVE_STATUSES)
            .first()
        )
        if recalculation is None:
            return None
        recalculation.status = model.Status.IN_PROGRESS
        recalculation.attempts += 1
        recalculation.started_at = recalculation.started_at or timezone.now()
        recalculation.save(update_fields=["status", "attempts", "started_at"])
        return recalculation


def timeseries_recalculation_start(*, recalculation_id: str) -> ExperimentTimeseriesRecalculation | None:
    """Start one more attempt of a timeseries recalculation (see `recalculation_attempt_start`)."""
    return recalculation_attempt_start(ExperimentTimeseriesRecalculation, recalculation_id)


def timeseries_day_store(
    *,
    recalculation: ExperimentTimeseriesRecalculation,
    day,
    query_to: datetime,
    result: dict[str, Any] | None,
    error_message: str | None = None,
) -> None:
    """Store one day's cumulative result (or why it could not be computed) and advance the
    recalculation's resume point, in one transaction."""
    with transaction.atomic():
        store_metric_result(
            recalculation,
            metric_uuid=recalculation.metric.get("uuid") or "",
            fingerprint=recalculation.fingerprint,
            query_to=query_to,
            result=result,
            error_message=error_message,
        )
        ExperimentTimeseriesRecalculation.objects.filter(pk=recalculation.pk).update(last_successful_date=day)
    recalculation.last_successful_date = day


def timeseries_recalculation_finish(
    *, recalculation_id: str, error_message: str | None = None, final: bool = True
) -> None:
    """Complete a recalculation, or record why an attempt failed: with `final` it becomes failed,
    otherwise it stays in progress for the retry."""
    with transaction.atomic():
        recalculation = lock_active(ExperimentTimeseriesRecalculation, recalculation_id)
        if recalculation is None:
            return
        recalculation.error_message = error_message
        if error_message is None:
            recalculation.status = ExperimentTimeseriesRecalculation.Status.COMPLETED
            recalculation.completed_at = timezone.now()
        elif final:
            recalculation.status = ExperimentTimeseriesRecalculation.Status.FAILED
            recalculation.completed_at = timezone.now()
        recalculation.save(update_fields=["status", "error_message", "completed_at"])


def timeseries_refresh_request(
    *, experiment: Experiment, metric: dict[str, Any]
) -> ExperimentTimeseriesRecalculation | None:
    """Extend a metric's timeseries with the days since its last run (the daily refresh): a new
    request resuming after the newest completed one, keeping the stored days. None when one is
    already active, or when the metric has never been recalculated (nobody asked for its series)."""
    fingerprint = metric.get("fingerprint") or ""
    previous = (
        ExperimentTimeseriesRecalculation.objects.filter(
            experiment=experiment,
            fingerprint=fingerprint,
            status=ExperimentTimeseriesRecalculation.Status.COMPLETED,
        )
        .order_by("-created_at")
        .first()
    )
    if previous is None:
        return None
    # The newest stored day was computed before that day ended; recompute it.
    resume_after = (
        previous.last_successful_date - timedelta(days=1) if previous.last_successful_date else None
    )
    try:
        with transaction.atomic():
            recalculation = ExperimentTimeseriesRecalculation.objects.create(
                project=experiment.project,
                experiment=experiment,
                metric=metric,
                fingerprint=fingerprint,
                last_successful_date=resume_after,
            )
            enqueue_timeseries(recalculation)
    except IntegrityError:
        return None
    return recalculation


def enqueue_timeseries(recalculation: ExperimentTimeseriesRecalculation) -> None:
    if _queue is not None:
        _queue.enqueue_timeseries(recalculation)


# --- metrics recalculations ---


def metrics_recalculation_request(
    *,
    experiment: Experiment,
    trigger: str = ExperimentMetricsRecalculation.Trigger.MANUAL,
    user: User | None = None,
    query_to: datetime | None = None,
) -> tuple[ExperimentMetricsRecalculation, bool]:
    """Ask for every metric of a started experiment to be computed as of `query_to` (default: now,
    or the end date of an ended experiment). Returns (recalculation, created): an active one is
    returned instead of creating another."""
    if experiment.start_date is None:
        raise ValidationError(CANNOT_RECALCULATE_DRAFT_METRICS)
    existing = ExperimentMetricsRecalculation.objects.filter(
        experiment=experiment, status__in=ExperimentMetricsRecalculation.ACTIVE_STATUSES
    ).first()
    if existing is not None:
        return existing, False
    metrics = experiment_metric_definitions(experiment)
    cutoff = query_to or timezone.now()
    if experiment.end_date is not None:
        cutoff = min(cutoff, experiment.end_date)
    try:
        with transaction.atomic():
            recalculation = ExperimentMetricsRecalculation.objects.create(
                project=experiment.project,
                experiment=experiment,
                trigger=trigger,
                metrics=metrics,
                metric_uuids=[metric["uuid"] for metric in metrics],
                total_metrics=len(metrics),
                query_to=cutoff,
                created_by=user if user is not None and user.is_authenticated else None,
            )
            if _queue is not None:
                _queue.enqueue_metrics(recalculation)
    except IntegrityError:
        # A concurrent request took the one active slot: answer with its row.
        return (
            ExperimentMetricsRecalculation.objects.get(
                experiment=experiment, status__in=ExperimentMetricsRecalculation.ACTIVE_STATUSES
            ),
            False,
        )
    return recalculation, True


def metrics_recalculation_start(*, recalculation_id: str) -> ExperimentMetricsRecalculation | None:
    """Start one more attempt of a metrics recalculation (see `recalculation_attempt_start`)."""
    return recalculation_attempt_start(ExperimentMetricsRecalculation, recalculation_id)


def metrics_recalculation_store_metric(
    *,
    recalculation: ExperimentMetricsRecalculation,
    metric: dict[str, Any],
    result: dict[str, Any] | None,
    error_message: str | None = None,
) -> None:
    """Store one metric's result (or why it has none) as of the recalculation's cutoff."""
    store_metric_result(
        recalculation,
        metric_uuid=metric["uuid"],
        fingerprint=metric.get("fingerprint"),
        query_to=recalculation.query_to,
        result=result,
        error_message=error_message,
    )


def metrics_recalculation_finish(
    *,
    recalculation_id: str,
    exposures: dict[str, Any] | None = None,
    error_message: str | None = None,
    final: bool = True,
) -> None:
    """Close a run: counts completed and failed metrics from the stored results. An error without
    `final` keeps it in progress for the retry; with `final` it fails."""
    with transaction.atomic():
        recalculation = lock_active(ExperimentMetricsRecalculation, recalculation_id)
        if recalculation is None:
            return
        recalculation.error_message = error_message
        if error_message is not None and not final:
            recalculation.save(update_fields=["error_message"])
            return
        rows = recalculation_results(recalculation)
        errors = {row.metric_uuid: row.error_message for row in rows if row.status == "failed"}
        recalculation.completed_metrics = sum(1 for row in rows if row.status == "completed")
        recalculation.failed_metrics = len(errors)
        recalculation.metric_errors = errors
        recalculation.exposures = exposures
        recalculation.completed_at = timezone.now()
        recalculation.status = (
            ExperimentMetricsRecalculation.Status.FAILED
            if error_message is not None
            or (recalculation.total_metrics and not recalculation.completed_metrics)
            else ExperimentMetricsRecalculation.Status.COMPLETED
        )
        recalculation.save()


def metrics_recalculation_body(
    recalculation: ExperimentMetricsRecalculation, *, is_existing: bool = True, with_results: bool = True
) -> dict[str, Any]:
    body = {
        "id": str(recalculation.id),
        "experiment_id": recalculation.experiment_id,
        "status": recalculation.status,
        "total_metrics": recalculation.total_metrics,
        "completed_metrics": recalculation.completed_metrics,
        "failed_metrics": recalculation.failed_metrics,
        "metric_errors": recalculation.metric_errors or {},
        # Not in PostHog's body: why the last attempt failed (kept while it is retried).
        "error_message": recalculation.error_message,
        "trigger": recalculation.trigger,
        "created_at": api_datetime(recalculation.created_at),
        "started_at": api_datetime(recalculation.started_at),
        "completed_at": api_datetime(recalculation.completed_at),
        "query_to": api_datetime(recalculation.query_to),
        "is_existing": is_existing,
        "result_source": "recalculation",
    }
    if with_results:
        rows = {row.metric_uuid: row for row in recalculation_results(recalculation)}
        body["results"] = [metric_result_entry(uuid, rows.get(uuid)) for uuid in recalculation.metric_uuids]
    return body


def metric_result_entry(metric_uuid: str, row: ExperimentMetricResult | None) -> dict[str, Any]:
    if row is None:
        return {"metric_uuid": metric_uuid, "status": "pending", "result": None, "error_message": None}
    return {
        "metric_uuid": metric_uuid,
        "status": row.status,
        "result": row.result,
        "error_message": row.error_message,
    }


def metrics_recalculation_get(
    *, experiment: Experiment, recalculation_id: str
) -> ExperimentMetricsRecalculation:
    try:
        # The route admits hex digits and dashes in any arrangement; only a real UUID reaches a query.
        recalculation_uuid = uuid.UUID(recalculation_id)
        return ExperimentMetricsRecalculation.objects.get(experiment=experiment, pk=recalculation_uuid)
    except (ExperimentMetricsRecalculation.DoesNotExist, ValueError) as error:
        raise NotFound(RECALCULATION_NOT_FOUND) from error


def metrics_recalculation_latest(*, experiment: Experiment) -> dict[str, Any]:
    """The newest metrics recalculation (with whatever results it has so far); without one, the
    newest stored daily results of the current metrics (`result_source: timeseries_fallback`).
    Raises NotFound when there is neither."""
    newest = (
        ExperimentMetricsRecalculation.objects.filter(experiment=experiment).order_by("-created_at").first()
    )
    if newest is not None:
        return metrics_recalculation_body(newest, is_existing=True)
    metrics = experiment_metric_definitions(experiment)
    newest_rows = newest_completed_results(experiment, metrics)
    if not newest_rows:
        raise NotFound(NO_COMPLETED_RECALCULATION)
    query_to = max(row.query_to for row in newest_rows.values())
    return {
        "id": None,
        "experiment_id": experiment.id,
        "status": ExperimentMetricsRecalculation.Status.COMPLETED,
        "total_metrics": len(metrics),
        "completed_metrics": len(newest_rows),
        "failed_metrics": 0,
        "metric_errors": {},
        "error_message": None,
        "trigger": None,
        "created_at": None,
        "started_at": None,
        "completed_at": api_datetime(max(row.completed_at or row.updated_at for row in newest_rows.values())),
        "query_to": api_datetime(query_to),
        "is_existing": True,
        "result_source": "timeseries_fallback",
        "results": [
            metric_result_entry(metric["uuid"], newest_rows.get(metric["uuid"])) for metric in metrics
        ],
    }


def newest_completed_results(
    experiment: Experiment, metrics: Iterable[dict[str, Any]]
) -> dict[str, ExperimentMetricResult]:
    """The newest completed result of each metric whose fingerprint still matches its definition."""
    wanted = Q()
    for metric in metrics:
        wanted |= Q(metric_uuid=metric["uuid"], fingerprint=metric.get("fingerprint"))
    if not wanted:
        return {}
    newest: dict[str, ExperimentMetricResult] = {}
    rows = ExperimentMetricResult.objects.filter(
        wanted, experiment=experiment, status=ExperimentMetricResult.Status.COMPLETED
    ).order_by("metric_uuid", "-query_to")
    for row in rows:
        newest.setdefault(row.metric_uuid, row)
    return newest

"""Experiment results bookkeeping: timeseries reads, recalculation requests and velocity stats.

Timeseries are read from `ExperimentMetricResult` rows, which the results worker writes; a
recalculation request is recorded with PostHog's idempotency rules and handed to that worker in
the same transaction (see `experiments/recalculations.py`).
"""

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from rest_framework.exceptions import ValidationError

from accounts.models import Project
from experiments.models import Experiment, ExperimentMetricResult, ExperimentTimeseriesRecalculation
from experiments.recalculations import enqueue_timeseries

NOT_STARTED = "Experiment has not been started yet"
CANNOT_RECALCULATE_DRAFT = "Cannot recalculate timeseries for experiment that hasn't started"
RESULT_STRIPPED_KEYS = ("step_sessions",)


def project_timezone(project: Project) -> ZoneInfo:
    try:
        return ZoneInfo(project.timezone or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def strip_step_sessions(result: Any) -> Any:
    """Drop per-step session samples from a stored result (they are large and not part of the API)."""
    if isinstance(result, dict):
        return {
            key: strip_step_sessions(value)
            for key, value in result.items()
            if key not in RESULT_STRIPPED_KEYS
        }
    if isinstance(result, list):
        return [strip_step_sessions(item) for item in result]
    return result


def experiment_days(experiment: Experiment, tz: ZoneInfo) -> list[date]:
    start = experiment.start_date.astimezone(tz).date()
    end = experiment.end_date.astimezone(tz).date() if experiment.end_date else datetime.now(tz).date()
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def format_timeseries(experiment: Experiment, response: dict[str, Any]) -> str:
    """A short text rendering of the timeseries state, for humans and assistants."""
    stats = experiment.stats_config or {}
    baseline = stats.get("baseline_variant_key") or "control"
    variants = [
        f"{key} (baseline)" if key == baseline else key for key in experiment.feature_flag.variant_keys
    ]
    calculated = sum(1 for value in response["timeseries"].values() if value is not None)
    lines = [
        f"Experiment: {experiment.name}",
        f"Metric: {response['metric_uuid']}",
        f"Method: {stats.get('method') or 'bayesian'}",
        f"Variants: {', '.join(variants)}",
        f"Status: {response['status']} ({calculated} of {len(response['timeseries'])} days calculated)",
    ]
    return "\n".join(lines)


def timeseries_results(*, experiment: Experiment, metric_uuid: str, fingerprint: str) -> dict[str, Any]:
    """One entry per calendar day from start to end (or today): the completed result or null."""
    if experiment.start_date is None:
        raise ValidationError(NOT_STARTED)
    tz = project_timezone(experiment.project)
    days = experiment_days(experiment, tz)
    rows = list(
        ExperimentMetricResult.objects.filter(
            experiment=experiment, metric_uuid=metric_uuid, fingerprint=fingerprint
        ).order_by("query_to")
    )
    by_day = {(row.query_to - timedelta(microseconds=1)).astimezone(tz).date(): row for row in rows}
    timeseries: dict[str, Any] = {}
    errors: dict[str, str] = {}
    completed = failed = calculated = 0
    latest_completed_at = None
    for day in days:
        row = by_day.get(day)
        timeseries[day.isoformat()] = None
        if row is None:
            continue
        calculated += 1
        if row.status == ExperimentMetricResult.Status.COMPLETED:
            timeseries[day.isoformat()] = strip_step_sessions(row.result)
            completed += 1
        elif row.status == ExperimentMetricResult.Status.FAILED:
            failed += 1
            if row.error_message:
                errors[day.isoformat()] = row.error_message
        if row.completed_at and (latest_completed_at is None or row.completed_at > latest_completed_at):
            latest_completed_at = row.completed_at
    if calculated == 0:
        status = "pending"
    elif completed == 0 and failed > 0:
        status = "failed"
    elif completed == len(days):
        status = "completed"
    else:
        status = "partial"
    active = ExperimentTimeseriesRecalculation.objects.filter(
        experiment=experiment,
        fingerprint=fingerprint,
        status__in=ExperimentTimeseriesRecalculation.ACTIVE_STATUSES,
    ).first()
    response = {
        "experiment_id": experiment.id,
        "metric_uuid": metric_uuid,
        "status": status,
        "timeseries": timeseries,
        "errors": errors or None,
        "computed_at": latest_completed_at.isoformat() if latest_completed_at else None,
        "created_at": (rows[0].created_at if rows else experiment.created_at).isoformat(),
        "updated_at": (rows[-1].updated_at if rows else experiment.updated_at).isoformat(),
        "recalculation_status": active.status if active else None,
        "recalculation_created_at": active.created_at.isoformat() if active else None,
    }
    response["formatted_results"] = format_timeseries(experiment, response)
    return response


def recalculation_body(recalculation: ExperimentTimeseriesRecalculation) -> dict[str, Any]:
    return {
        "id": str(recalculation.id),
        "experiment_id": recalculation.experiment_id,
        "metric_uuid": (recalculation.metric or {}).get("uuid"),
        "fingerprint": recalculation.fingerprint,
        "status": recalculation.status,
        "created_at": recalculation.created_at.isoformat(),
    }


def experiment_request_timeseries_recalculation(
    *, experiment: Experiment, metric: dict[str, Any], fingerprint: str
) -> tuple[dict[str, Any], bool]:
    """Record a recalculation request and queue its job. Returns (body, created): an active request
    for the same experiment and fingerprint is returned instead of creating another."""
    if experiment.start_date is None:
        raise ValidationError(CANNOT_RECALCULATE_DRAFT)
    active_filter = {
        "experiment": experiment,
        "fingerprint": fingerprint,
        "status__in": ExperimentTimeseriesRecalculation.ACTIVE_STATUSES,
    }
    existing = ExperimentTimeseriesRecalculation.objects.filter(**active_filter).first()
    if existing is not None:
        return recalculation_body(existing), False
    try:
        with transaction.atomic():
            if metric.get("uuid"):
                ExperimentMetricResult.objects.filter(
                    experiment=experiment, metric_uuid=metric["uuid"], fingerprint=fingerprint
                ).delete()
            created = ExperimentTimeseriesRecalculation.objects.create(
                project=experiment.project, experiment=experiment, metric=metric, fingerprint=fingerprint
            )
            enqueue_timeseries(created)
    except IntegrityError:
        # A concurrent request won the race for the one active slot: answer with its row.
        return recalculation_body(ExperimentTimeseriesRecalculation.objects.get(**active_filter)), False
    return recalculation_body(created), True


def experiment_velocity_stats(project: Project) -> dict[str, Any]:
    """Launch and completion counts over the last 30 days (in the project's timezone), vs the 30 before."""
    tz = project_timezone(project)
    today = datetime.now(tz).date()

    def midnight(day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), tzinfo=tz)

    last_start, previous_start, tomorrow = (
        midnight(today - timedelta(days=30)),
        midnight(today - timedelta(days=60)),
        midnight(today + timedelta(days=1)),
    )
    base = Experiment.objects.filter(project=project, deleted=False, archived=False)
    launched_last = base.filter(start_date__gte=last_start, start_date__lt=tomorrow).count()
    launched_previous = base.filter(start_date__gte=previous_start, start_date__lt=last_start).count()
    if launched_previous == 0:
        percent_change = 100.0 if launched_last > 0 else 0.0
    else:
        percent_change = (launched_last - launched_previous) / launched_previous * 100
    return {
        "launched_last_30d": launched_last,
        "launched_previous_30d": launched_previous,
        "percent_change": round(percent_change, 1),
        "active_experiments": base.filter(start_date__isnull=False, end_date__isnull=True).count(),
        "completed_last_30d": base.filter(end_date__gte=last_start, end_date__lt=tomorrow).count(),
    }

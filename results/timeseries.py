"""The timeseries job: one metric's cumulative result as of the end of each day of the experiment.

Days are calendar days in the project's timezone, from the start date to the end date (or today);
each day's result covers everything from the start up to that day's end (or now, for today), as
PostHog's backfill does. Days are stored one by one, so a retried or resumed job continues after
the last stored day instead of starting over.
"""

from datetime import datetime

from django.utils import timezone
from rest_framework.exceptions import ValidationError

from experiments.recalculations import (
    end_of_day,
    project_timezone_of,
    timeseries_day_store,
    timeseries_recalculation_finish,
    timeseries_recalculation_start,
)
from experiments.results import NOT_STARTED, experiment_days
from results import services

EVERY_DAY_FAILED = "No day could be calculated: {reason}"


def validation_message(error: ValidationError) -> str:
    """The first human-readable message of a DRF validation error, however it is nested."""
    detail = error.detail
    while isinstance(detail, (list, dict)) and detail:
        detail = next(iter(detail.values())) if isinstance(detail, dict) else detail[0]
    return str(detail)


def failure_message(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


def timeseries_recalculation_run(
    *, recalculation_id: str, final_attempt: bool, now: datetime | None = None
) -> None:
    """Compute and store every day not stored yet, then complete the recalculation.

    A metric the engine refuses (a `ValidationError`: unsupported, or not analysable) fails its
    days with the reason and is not retried; any other error is recorded on the recalculation and
    re-raised so the queue retries it with backoff, failing it for good on the last attempt."""
    recalculation = timeseries_recalculation_start(recalculation_id=recalculation_id)
    if recalculation is None:
        return
    experiment = recalculation.experiment
    if experiment.start_date is None:
        # Reset to draft since the request: there are no days to compute.
        timeseries_recalculation_finish(recalculation_id=recalculation_id, error_message=NOT_STARTED)
        return
    tz = project_timezone_of(experiment)
    now = now or timezone.now()
    refused: list[str] = []
    computed = 0
    try:
        for day in experiment_days(experiment, tz):
            if recalculation.last_successful_date is not None and day <= recalculation.last_successful_date:
                continue
            query_to = end_of_day(day, tz)
            as_of = min(query_to, now, experiment.end_date or query_to)
            try:
                result = services.experiment_metric_result(
                    experiment=experiment, metric=recalculation.metric, as_of=as_of
                )
            except ValidationError as error:
                reason = validation_message(error)
                refused.append(reason)
                timeseries_day_store(
                    recalculation=recalculation, day=day, query_to=query_to, result=None, error_message=reason
                )
                continue
            computed += 1
            timeseries_day_store(recalculation=recalculation, day=day, query_to=query_to, result=result)
    except Exception as error:
        timeseries_recalculation_finish(
            recalculation_id=recalculation_id, error_message=failure_message(error), final=final_attempt
        )
        raise
    if refused and not computed:
        timeseries_recalculation_finish(
            recalculation_id=recalculation_id, error_message=EVERY_DAY_FAILED.format(reason=refused[-1])
        )
        return
    timeseries_recalculation_finish(recalculation_id=recalculation_id)

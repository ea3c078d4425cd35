"""The results worker's tasks, on procrastinate (a PostgreSQL job queue).

Why procrastinate: the queue lives in the PostgreSQL database this server already requires (no
broker to run), workers fetch with `FOR UPDATE SKIP LOCKED` so any number of them on any number of
machines share the work, it schedules periodic tasks once per period however many workers run,
and its locks express our rules directly: a job's `lock` keeps two jobs for one experiment and
metric from running at once, its `queueing_lock` keeps at most one waiting.

Deferring goes through Django's database connection, so a job is committed or rolled back with
the request that created it. The task bodies are thin: the work is in `results.timeseries`,
`results.refresh` and `results.queries`, so moving to another queue means rewriting this file only.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from procrastinate import JobContext, RetryStrategy
from procrastinate.contrib.django import app
from procrastinate.exceptions import AlreadyEnqueued

from experiments.models import ExperimentMetricsRecalculation, ExperimentTimeseriesRecalculation
from results.engines.timeouts import statement_timeout_seconds
from results.models import QueryRun
from results.queries import query_run_execute
from results.refresh import metrics_recalculation_run, refresh_running_experiments
from results.timeseries import timeseries_recalculation_run

logger = logging.getLogger(__name__)

RESULTS_QUEUE = "results"
MAX_ATTEMPTS = 5
# Waits of 4, 16, 64 and 256 seconds between the five attempts (procrastinate's `max_attempts`
# counts the retries after the first run).
RETRY = RetryStrategy(max_attempts=MAX_ATTEMPTS - 1, exponential_wait=4)
# A worker that has not sent a heartbeat for this long is considered dead, and its jobs are retried.
STALLED_AFTER_SECONDS = 60
# A pending request older than this with no job waiting is queued again (requests made while no
# queue was configured, or whose job was lost).
FORGOTTEN_AFTER_SECONDS = 120


def is_final_attempt(context: JobContext) -> bool:
    """Whether a failure now would not be retried (asked of the strategy the worker applies)."""
    return RETRY.get_retry_decision(exception=RuntimeError(), job=context.job) is None


@app.task(name="results.recalculate_timeseries", queue=RESULTS_QUEUE, retry=RETRY, pass_context=True)
def recalculate_timeseries(context: JobContext, recalculation_id: str) -> None:
    # Nobody waits on a job: the web requests' statement timeout does not apply.
    statement_timeout_seconds.set(0)
    timeseries_recalculation_run(recalculation_id=recalculation_id, final_attempt=is_final_attempt(context))


@app.task(name="results.recalculate_metrics", queue=RESULTS_QUEUE, retry=RETRY, pass_context=True)
def recalculate_metrics(context: JobContext, recalculation_id: str) -> None:
    statement_timeout_seconds.set(0)
    metrics_recalculation_run(recalculation_id=recalculation_id, final_attempt=is_final_attempt(context))


@app.task(name="results.run_query", queue=RESULTS_QUEUE, pass_context=True)
def run_query(context: JobContext, run_id: str) -> None:
    """An asynchronous `/query/` run. Not retried on failure: its failure is recorded on the run,
    which the client reads when polling, and asking again starts a new run. A job given back after
    its worker crashed (a later attempt) takes over the run that worker left running."""
    statement_timeout_seconds.set(0)
    query_run_execute(run_id=run_id, resumed=context.job.attempts > 0)


@app.periodic(cron="0 * * * *")
@app.task(name="results.refresh_running_experiments", queue=RESULTS_QUEUE, queueing_lock="results.refresh")
def refresh_running(timestamp: int) -> None:
    """Hourly; each running experiment is refreshed in the hour its project's day begins."""
    queued = refresh_running_experiments()
    logger.info("Queued %s daily experiment refreshes", queued)


@app.periodic(cron="*/2 * * * *")
@app.task(
    name="results.retry_stalled_jobs", queue=RESULTS_QUEUE, queueing_lock="results.stalled", pass_context=True
)
async def retry_stalled_jobs(context: JobContext, timestamp: int) -> None:
    """Give the jobs of crashed workers (no heartbeat) back to the queue."""
    stalled = await context.app.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_SECONDS)
    for job in stalled:
        logger.warning("Retrying job %s of a stalled worker", job.id)
        await context.app.job_manager.retry_job(job)


@app.periodic(cron="*/5 * * * *")
@app.task(name="results.enqueue_forgotten", queue=RESULTS_QUEUE, queueing_lock="results.forgotten")
def enqueue_forgotten(timestamp: int) -> None:
    enqueue_forgotten_recalculations()


def enqueue_forgotten_recalculations() -> None:
    cutoff = timezone.now() - timedelta(seconds=FORGOTTEN_AFTER_SECONDS)
    queue = ProcrastinateRecalculationQueue()
    pending = ExperimentTimeseriesRecalculation.Status.PENDING
    for recalculation in ExperimentTimeseriesRecalculation.objects.filter(
        status=pending, created_at__lt=cutoff
    ):
        queue.enqueue_timeseries(recalculation)
    for recalculation in ExperimentMetricsRecalculation.objects.filter(status=pending, created_at__lt=cutoff):
        queue.enqueue_metrics(recalculation)


def timeseries_lock(recalculation: ExperimentTimeseriesRecalculation) -> str:
    return f"results.timeseries:{recalculation.experiment_id}:{recalculation.fingerprint}"


def metrics_lock(recalculation: ExperimentMetricsRecalculation) -> str:
    return f"results.metrics:{recalculation.experiment_id}"


class ProcrastinateRecalculationQueue:
    """The recalculation queue `experiments.recalculations` hands requests to."""

    def enqueue_timeseries(self, recalculation: ExperimentTimeseriesRecalculation) -> None:
        lock = timeseries_lock(recalculation)
        defer_once(recalculate_timeseries, lock=lock, recalculation_id=str(recalculation.id))

    def enqueue_metrics(self, recalculation: ExperimentMetricsRecalculation) -> None:
        lock = metrics_lock(recalculation)
        defer_once(recalculate_metrics, lock=lock, recalculation_id=str(recalculation.id))


class ProcrastinateQueryRunQueue:
    """The queue `results.queries` hands asynchronous `/query/` runs to: one job per run."""

    def enqueue(self, run: QueryRun) -> None:
        defer_once(run_query, lock=f"results.query:{run.id}", run_id=str(run.id))


def defer_once(task, *, lock: str, **arguments: str) -> None:
    """Queue the job unless one with the same lock is already waiting (for a recalculation, that
    one will run first and the forgotten-request sweep queues this request after it)."""
    try:
        # A savepoint: a refused insert must not abort the caller's transaction.
        with transaction.atomic():
            task.configure(lock=lock, queueing_lock=lock).defer(**arguments)
    except AlreadyEnqueued:
        logger.info("A job for %s is already waiting; %s stays pending", lock, arguments)

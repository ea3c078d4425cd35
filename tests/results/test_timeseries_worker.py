"""`recalculate_timeseries/` through the real worker: one cumulative result per day, retries with
backoff, permanent failures, locks, and jobs of crashed workers picked up again.

The engine call is replaced by a recorder here (these tests are about the queue and the states);
the end-to-end tests with events are in test_results_end_to_end.py."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from experiments.models import ExperimentMetricResult, ExperimentTimeseriesRecalculation
from experiments.results import NOT_STARTED
from results import services
from results.tasks import MAX_ATTEMPTS, recalculate_timeseries, retry_stalled_jobs
from results.timeseries import EVERY_DAY_FAILED
from tests.factories import ExperimentFactory
from tests.results.conftest import queue_rows

pytestmark = pytest.mark.django_db(transaction=True)

METRIC = {
    "kind": "ExperimentMetric",
    "metric_type": "mean",
    "uuid": "11111111-1111-4111-8111-111111111111",
    "source": {"kind": "EventsNode", "event": "purchase"},
}
FINGERPRINT = "a" * 64


class RecordingEngine:
    """Stands in for `results.services.experiment_metric_result`: answers a body naming the
    instant it was asked about, and raises `failures[n]` on its n-th call (counting from 1)."""

    def __init__(self):
        self.calls: list[datetime] = []
        self.asked = 0
        self.failures: dict[int, Exception] = {}

    def __call__(self, *, experiment, metric, as_of):
        self.asked += 1
        if self.asked in self.failures:
            raise self.failures[self.asked]
        self.calls.append(as_of)
        return {
            "kind": "ExperimentQuery",
            "as_of": as_of.isoformat(),
            "metric_uuid": metric["uuid"],
            "baseline": {"key": "control", "number_of_samples": len(self.calls), "step_sessions": [["s"]]},
            "variant_results": [],
        }


@pytest.fixture
def engine(monkeypatch) -> RecordingEngine:
    recorder = RecordingEngine()
    monkeypatch.setattr(services, "experiment_metric_result", recorder)
    return recorder


def started_days_ago(api, days: int, tz: str = "UTC"):
    api.project.timezone = tz
    api.project.save(update_fields=["timezone"])
    return ExperimentFactory(project=api.project, start_date=timezone.now() - timedelta(days=days))


def request_recalculation(api, experiment) -> dict:
    response = api.post(
        api.url(f"experiments/{experiment.id}/recalculate_timeseries/"),
        {"metric": METRIC, "fingerprint": FINGERPRINT},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def timeseries(api, experiment) -> dict:
    response = api.get(
        api.url(f"experiments/{experiment.id}/timeseries_results/"),
        {"metric_uuid": METRIC["uuid"], "fingerprint": FINGERPRINT},
    )
    assert response.status_code == 200
    return response.json()


def make_job_due_now() -> None:
    """Skip the backoff wait of jobs scheduled for a retry."""
    queue_rows("UPDATE procrastinate_jobs SET scheduled_at = now() WHERE status = 'todo' RETURNING id")


def test_a_recalculation_fills_one_cumulative_result_per_day_in_the_project_timezone(api, engine, run_worker):
    experiment = started_days_ago(api, 3, tz="America/New_York")
    requested = request_recalculation(api, experiment)
    assert timeseries(api, experiment)["recalculation_status"] == "pending"

    run_worker()

    body = timeseries(api, experiment)
    tz = ZoneInfo("America/New_York")
    days = [date.fromisoformat(day) for day in body["timeseries"]]
    assert body["status"] == "completed"
    assert body["recalculation_status"] is None
    assert len(days) == 4 and all(body["timeseries"][day.isoformat()] is not None for day in days)
    for day in days[:-1]:
        end_of_day = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
        assert datetime.fromisoformat(body["timeseries"][day.isoformat()]["as_of"]) == end_of_day
    # Today is computed as of now, and stored results lose their per-step session samples.
    assert datetime.fromisoformat(body["timeseries"][days[-1].isoformat()]["as_of"]) <= timezone.now()
    assert "step_sessions" not in body["timeseries"][days[0].isoformat()]["baseline"]
    recalculation = ExperimentTimeseriesRecalculation.objects.get(pk=requested["id"])
    assert (recalculation.status, recalculation.attempts, recalculation.last_successful_date) == (
        "completed",
        1,
        days[-1],
    )
    assert ExperimentMetricResult.objects.filter(experiment=experiment, status="completed").count() == 4
    assert queue_rows("SELECT count(*) FROM procrastinate_jobs") == [(0,)]


def test_a_failing_attempt_is_recorded_retried_with_backoff_and_resumes_after_the_stored_days(
    api, engine, run_worker
):
    experiment = started_days_ago(api, 2)
    # The first two days succeed, then reading the events breaks once.
    engine.failures = {3: RuntimeError("connection reset while reading events")}
    requested = request_recalculation(api, experiment)

    run_worker()

    recalculation = ExperimentTimeseriesRecalculation.objects.get(pk=requested["id"])
    assert recalculation.status == "in_progress"
    assert recalculation.error_message == "RuntimeError: connection reset while reading events"
    assert timeseries(api, experiment)["status"] == "partial"
    [(status, attempts, wait)] = queue_rows(
        "SELECT status, attempts, scheduled_at - now() FROM procrastinate_jobs"
    )
    assert (status, attempts) == ("todo", 1)
    assert timedelta(seconds=2) < wait <= timedelta(seconds=4)

    make_job_due_now()
    run_worker()

    recalculation.refresh_from_db()
    assert (recalculation.status, recalculation.attempts, recalculation.error_message) == (
        "completed",
        2,
        None,
    )
    assert timeseries(api, experiment)["status"] == "completed"
    # Two days stored by the first attempt were not computed again: 2 + 1 calls.
    assert len(engine.calls) == 3


def test_the_last_failing_attempt_fails_the_recalculation_with_its_reason(api, engine, run_worker):
    experiment = started_days_ago(api, 1)
    engine.failures = {n: RuntimeError("events table is locked") for n in range(1, MAX_ATTEMPTS + 1)}
    requested = request_recalculation(api, experiment)

    for _ in range(MAX_ATTEMPTS):
        run_worker()
        make_job_due_now()

    recalculation = ExperimentTimeseriesRecalculation.objects.get(pk=requested["id"])
    assert (recalculation.status, recalculation.attempts) == ("failed", MAX_ATTEMPTS)
    assert recalculation.error_message == "RuntimeError: events table is locked"
    assert queue_rows("SELECT status, attempts FROM procrastinate_jobs") == [("failed", MAX_ATTEMPTS)]
    # A failed recalculation no longer blocks a new request for the same metric.
    assert timeseries(api, experiment)["recalculation_status"] is None
    assert request_recalculation(api, experiment)["id"] != requested["id"]


def test_a_metric_the_engine_refuses_fails_every_day_with_the_reason_and_is_not_retried(
    api, run_worker, monkeypatch
):
    experiment = started_days_ago(api, 1)

    def refuse(**kwargs):
        raise ValidationError("Unsupported math: hogql")

    monkeypatch.setattr(services, "experiment_metric_result", refuse)
    requested = request_recalculation(api, experiment)

    run_worker()

    body = timeseries(api, experiment)
    assert body["status"] == "failed"
    assert set(body["errors"].values()) == {"Unsupported math: hogql"}
    recalculation = ExperimentTimeseriesRecalculation.objects.get(pk=requested["id"])
    assert recalculation.status == "failed"
    assert recalculation.error_message == EVERY_DAY_FAILED.format(reason="Unsupported math: hogql")
    assert queue_rows("SELECT count(*) FROM procrastinate_jobs") == [(0,)]


def test_a_job_waits_while_another_holds_the_lock_of_its_experiment_and_metric(api, engine, run_worker):
    experiment = started_days_ago(api, 0)
    requested = request_recalculation(api, experiment)
    [(lock,)] = queue_rows("SELECT lock FROM procrastinate_jobs")
    assert lock == f"results.timeseries:{experiment.id}:{FINGERPRINT}"
    # Another worker is running a job under the same lock.
    queue_rows(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args, status) "
        "VALUES ('results', 'results.recalculate_timeseries', %s, '{}', 'doing') RETURNING id",
        lock,
    )

    run_worker()

    assert ExperimentTimeseriesRecalculation.objects.get(pk=requested["id"]).status == "pending"
    assert engine.calls == []

    queue_rows("UPDATE procrastinate_jobs SET status = 'succeeded' WHERE status = 'doing' RETURNING id")
    run_worker()

    assert ExperimentTimeseriesRecalculation.objects.get(pk=requested["id"]).status == "completed"


def test_a_second_job_for_the_same_lock_is_not_queued_and_the_request_still_succeeds(api, engine):
    experiment = started_days_ago(api, 0)
    first = request_recalculation(api, experiment)
    # The first request was superseded (e.g. failed by hand) while its job still waits.
    ExperimentTimeseriesRecalculation.objects.filter(pk=first["id"]).update(status="failed")

    second = request_recalculation(api, experiment)

    assert second["status"] == "pending"
    assert queue_rows("SELECT count(*) FROM procrastinate_jobs") == [(1,)]
    assert ExperimentTimeseriesRecalculation.objects.filter(status="pending").count() == 1


def test_the_job_of_a_crashed_worker_is_picked_up_again(api, engine, run_worker):
    experiment = started_days_ago(api, 0)
    requested = request_recalculation(api, experiment)
    # A worker took the job and died: its heartbeat stopped ten minutes ago.
    [(worker_id,)] = queue_rows(
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '10 minutes') RETURNING id"
    )
    queue_rows(
        "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s RETURNING id",
        worker_id,
    )
    ExperimentTimeseriesRecalculation.objects.filter(pk=requested["id"]).update(status="in_progress")
    retry_stalled_jobs.defer(timestamp=int(datetime.now(UTC).timestamp()))

    run_worker()

    recalculation = ExperimentTimeseriesRecalculation.objects.get(pk=requested["id"])
    assert recalculation.status == "completed"
    assert len(engine.calls) == 1


def test_a_job_delivered_for_a_finished_recalculation_changes_nothing(api, engine, run_worker):
    experiment = started_days_ago(api, 0)
    requested = request_recalculation(api, experiment)
    run_worker()
    stored = list(ExperimentMetricResult.objects.values_list("id", "updated_at"))

    recalculate_timeseries.defer(recalculation_id=requested["id"])
    run_worker()

    assert list(ExperimentMetricResult.objects.values_list("id", "updated_at")) == stored
    assert len(engine.calls) == 1


def test_an_experiment_reset_to_draft_before_its_job_runs_fails_the_request_once(api, engine, run_worker):
    experiment = started_days_ago(api, 1)
    requested = request_recalculation(api, experiment)
    type(experiment).objects.filter(pk=experiment.pk).update(start_date=None)

    run_worker()

    recalculation = ExperimentTimeseriesRecalculation.objects.get(pk=requested["id"])
    assert (recalculation.status, recalculation.error_message, recalculation.attempts) == (
        "failed",
        NOT_STARTED,
        1,
    )
    assert engine.calls == []
    assert queue_rows("SELECT count(*) FROM procrastinate_jobs") == [(0,)]

"""`metrics_recalculation/` (POST, `latest/`, `{id}/`) through the real worker, and the periodic
refresh of running experiments. The engine call is a recorder (see test_timeseries_worker.py)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from experiments.models import (
    ExperimentMetricResult,
    ExperimentMetricsRecalculation,
    ExperimentTimeseriesRecalculation,
)
from experiments.recalculations import (
    CANNOT_RECALCULATE_DRAFT_METRICS,
    NO_COMPLETED_RECALCULATION,
    RECALCULATION_NOT_FOUND,
    experiment_metric_definitions,
)
from results import services
from results.refresh import refresh_running_experiments
from results.tasks import FORGOTTEN_AFTER_SECONDS, enqueue_forgotten
from tests.factories import ExperimentFactory, ExperimentSavedMetricFactory
from tests.results.conftest import queue_rows
from tests.results.test_timeseries_worker import RecordingEngine

pytestmark = pytest.mark.django_db(transaction=True)


def metric(uuid: str, event: str = "purchase") -> dict:
    return {
        "kind": "ExperimentMetric",
        "metric_type": "mean",
        "uuid": uuid,
        "fingerprint": f"fp-{uuid}",
        "source": {"kind": "EventsNode", "event": event},
    }


PRIMARY = metric("22222222-2222-4222-8222-222222222222")
SECONDARY = metric("33333333-3333-4333-8333-333333333333", event="signup")


@pytest.fixture
def engine(monkeypatch) -> RecordingEngine:
    recorder = RecordingEngine()
    monkeypatch.setattr(services, "experiment_metric_result", recorder)
    return recorder


@pytest.fixture
def running(api):
    return ExperimentFactory(
        project=api.project,
        start_date=timezone.now() - timedelta(days=5),
        metrics=[PRIMARY],
        metrics_secondary=[SECONDARY],
    )


def recalculation_url(api, experiment, suffix: str = "") -> str:
    return api.url(f"experiments/{experiment.id}/metrics_recalculation/{suffix}")


def test_a_recalculation_computes_every_metric_as_of_one_cutoff(api, engine, run_worker, running):
    saved = ExperimentSavedMetricFactory(project=api.project)
    running.experimenttosavedmetric_set.create(saved_metric=saved, metadata={"type": "secondary"})

    created = api.post(recalculation_url(api, running), {"trigger": "manual"}, format="json")

    assert created.status_code == 201
    body = created.json()
    assert (body["status"], body["total_metrics"], body["trigger"], body["is_existing"]) == (
        "pending",
        3,
        "manual",
        False,
    )
    assert "results" not in body
    run_worker()

    latest = api.get(recalculation_url(api, running, "latest/"))
    assert latest.status_code == 200
    latest_body = latest.json()
    assert latest_body["id"] == body["id"]
    assert (latest_body["status"], latest_body["completed_metrics"], latest_body["failed_metrics"]) == (
        "completed",
        3,
        0,
    )
    assert latest_body["result_source"] == "recalculation"
    assert [entry["metric_uuid"] for entry in latest_body["results"]] == [
        PRIMARY["uuid"],
        SECONDARY["uuid"],
        saved.query["uuid"],
    ]
    query_to = datetime.fromisoformat(latest_body["query_to"])
    assert {entry["result"]["as_of"] for entry in latest_body["results"]} == {query_to.isoformat()}
    assert api.get(recalculation_url(api, running, f"{body['id']}/")).json() == latest_body
    # The saved metric's result is stored under the fingerprint its definition has today.
    saved_definition = next(
        m for m in experiment_metric_definitions(running) if m["uuid"] == saved.query["uuid"]
    )
    assert (
        ExperimentMetricResult.objects.get(metric_uuid=saved.query["uuid"]).fingerprint
        == saved_definition["fingerprint"]
    )


def test_a_second_request_while_one_is_active_answers_200_with_it(api, engine, running):
    first = api.post(recalculation_url(api, running), {}, format="json")
    second = api.post(recalculation_url(api, running), {"trigger": "manual"}, format="json")

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["is_existing"] is True
    assert ExperimentMetricsRecalculation.objects.count() == 1
    assert queue_rows("SELECT task_name, lock FROM procrastinate_jobs") == [
        ("results.recalculate_metrics", f"results.metrics:{running.id}")
    ]


def test_one_refused_metric_fails_alone_with_its_reason(api, run_worker, running, monkeypatch):
    recorder = RecordingEngine()

    def engine(*, experiment, metric, as_of):
        if metric["uuid"] == SECONDARY["uuid"]:
            raise ValidationError("Event 'signup' has no numeric property")
        return recorder(experiment=experiment, metric=metric, as_of=as_of)

    monkeypatch.setattr(services, "experiment_metric_result", engine)
    api.post(recalculation_url(api, running), {}, format="json")
    run_worker()

    body = api.get(recalculation_url(api, running, "latest/")).json()
    assert (body["status"], body["completed_metrics"], body["failed_metrics"]) == ("completed", 1, 1)
    assert body["metric_errors"] == {SECONDARY["uuid"]: "Event 'signup' has no numeric property"}
    failed = next(entry for entry in body["results"] if entry["metric_uuid"] == SECONDARY["uuid"])
    assert (failed["status"], failed["result"], failed["error_message"]) == (
        "failed",
        None,
        "Event 'signup' has no numeric property",
    )


def test_latest_is_404_without_any_result_and_falls_back_to_the_newest_daily_results(api, running):
    missing = api.get(recalculation_url(api, running, "latest/"))
    assert (missing.status_code, missing.json()["detail"]) == (404, NO_COMPLETED_RECALCULATION)

    for days_ago, samples in ((2, 10), (1, 20)):
        ExperimentMetricResult.objects.create(
            experiment=running,
            metric_uuid=PRIMARY["uuid"],
            fingerprint=PRIMARY["fingerprint"],
            query_to=timezone.now() - timedelta(days=days_ago),
            status="completed",
            result={"baseline": {"number_of_samples": samples}},
            completed_at=timezone.now(),
        )
    # A result of an older definition of the metric does not count.
    ExperimentMetricResult.objects.create(
        experiment=running,
        metric_uuid=SECONDARY["uuid"],
        fingerprint="an-older-definition",
        query_to=timezone.now(),
        status="completed",
        result={},
    )

    fallback = api.get(recalculation_url(api, running, "latest/")).json()

    assert fallback["result_source"] == "timeseries_fallback"
    assert [entry["status"] for entry in fallback["results"]] == ["completed", "pending"]
    assert fallback["results"][0]["result"] == {"baseline": {"number_of_samples": 20}}


def test_requests_for_drafts_and_unknown_ids_are_refused(api, running):
    draft = ExperimentFactory(project=api.project, metrics=[PRIMARY])
    refused = api.post(recalculation_url(api, draft), {}, format="json")
    assert (refused.status_code, refused.json()["detail"]) == (400, CANNOT_RECALCULATE_DRAFT_METRICS)
    bad_trigger = api.post(recalculation_url(api, running), {"trigger": "whenever"}, format="json")
    assert bad_trigger.status_code == 400
    unknown = api.get(recalculation_url(api, running, "00000000-0000-4000-8000-000000000000/"))
    assert (unknown.status_code, unknown.json()["detail"]) == (404, RECALCULATION_NOT_FOUND)
    # Hex digits and dashes the route admits, but not a UUID (found by make fuzz: it was a 500).
    malformed = api.get(recalculation_url(api, running, "cBd-6BF550FadA5a50cb4e09eF9E739FEE8/"))
    assert (malformed.status_code, malformed.json()["detail"]) == (404, RECALCULATION_NOT_FOUND)
    assert ExperimentMetricsRecalculation.objects.count() == 0


def test_the_daily_refresh_recalculates_running_experiments_at_their_projects_midnight(
    api, engine, run_worker, running
):
    api.project.timezone = "Asia/Tokyo"
    api.project.save(update_fields=["timezone"])
    ExperimentFactory(project=api.project, metrics=[PRIMARY])  # a draft
    ExperimentFactory(  # ended
        project=api.project,
        metrics=[PRIMARY],
        start_date=timezone.now() - timedelta(days=9),
        end_date=timezone.now() - timedelta(days=1),
    )
    # The timeseries someone asked for is extended too, recomputing its last (then partial) day.
    api.post(
        api.url(f"experiments/{running.id}/recalculate_timeseries/"),
        {"metric": PRIMARY, "fingerprint": PRIMARY["fingerprint"]},
        format="json",
    )
    run_worker()
    days_before = len(engine.calls)

    tokyo_midnight_in_utc = datetime.now(UTC).replace(hour=15, minute=5) + timedelta(days=1)
    assert refresh_running_experiments(now=tokyo_midnight_in_utc - timedelta(hours=1)) == 0
    assert refresh_running_experiments(now=tokyo_midnight_in_utc) == 1
    assert refresh_running_experiments(now=tokyo_midnight_in_utc) == 0  # already active

    recalculation = ExperimentMetricsRecalculation.objects.get()
    assert (recalculation.experiment_id, recalculation.trigger) == (running.id, "auto_refresh")
    refresh = ExperimentTimeseriesRecalculation.objects.get(status="pending")
    run_worker()
    refresh.refresh_from_db()
    assert refresh.status == "completed"
    # 2 metrics of the recalculation + the timeseries' last stored day, recomputed.
    assert len(engine.calls) - days_before == 3


def test_requests_without_a_job_are_queued_again_by_the_sweep(api, engine, run_worker, running):
    api.post(recalculation_url(api, running), {}, format="json")
    # The job was lost (or the request was made while no queue was configured).
    queue_rows("DELETE FROM procrastinate_jobs RETURNING id")
    ExperimentMetricsRecalculation.objects.update(
        created_at=timezone.now() - timedelta(seconds=FORGOTTEN_AFTER_SECONDS + 1)
    )

    enqueue_forgotten.defer(timestamp=0)
    run_worker()

    assert ExperimentMetricsRecalculation.objects.get().status == "completed"

"""Events sent through `/batch/`, the real engine and the real worker: the timeseries fills in day
by day with cumulative results, and a metrics recalculation agrees with `/query/`."""

from datetime import timedelta

import pytest

from experiments.models import ExperimentMetricsRecalculation
from tests.results.conftest import CONVERSION
from tests.results.events import event, exposure, send

pytestmark = pytest.mark.django_db(transaction=True)


def send_two_days_of_traffic(project, experiment) -> None:
    """60 users per variant and day on days 0 and 1; test users buy for 15-17, control for 10-12."""
    events = []
    for day in (0, 1):
        for variant, amounts in (("control", (10, 11, 12)), ("test", (15, 16, 17))):
            for index in range(60):
                user = f"{variant}-{day}-{index}"
                when = experiment.start_date + timedelta(days=day, hours=1)
                events.append(exposure(experiment, user, variant, when))
                events.append(event("purchase", user, when + timedelta(hours=1), amount=amounts[index % 3]))
    send(project, events)


def test_the_timeseries_fills_with_one_cumulative_result_per_day(api, project, recent_experiment, run_worker):
    experiment = recent_experiment
    send_two_days_of_traffic(project, experiment)
    requested = api.post(
        api.url(f"experiments/{experiment.id}/recalculate_timeseries/"),
        {"metric": CONVERSION, "fingerprint": CONVERSION["fingerprint"]},
        format="json",
    )
    assert requested.status_code == 201

    run_worker()

    body = api.get(
        api.url(f"experiments/{experiment.id}/timeseries_results/"),
        {"metric_uuid": CONVERSION["uuid"], "fingerprint": CONVERSION["fingerprint"]},
    ).json()
    assert body["status"] == "completed"
    days = list(body["timeseries"].values())
    assert len(days) == 3
    # Cumulative: the second day's result includes the first day's users; the third adds nobody.
    assert [day["baseline"]["number_of_samples"] for day in days] == [60, 120, 120]
    assert [day["variant_results"][0]["sum"] for day in days] == [960, 1920, 1920]
    final = days[-1]["variant_results"][0]
    assert (final["key"], final["significant"]) == ("test", True)
    assert final["chance_to_win"] > 0.99


def test_a_metrics_recalculation_agrees_with_the_query_api_and_keeps_the_exposures(
    api, project, recent_experiment, run_worker
):
    experiment = recent_experiment
    send_two_days_of_traffic(project, experiment)
    created = api.post(api.url(f"experiments/{experiment.id}/metrics_recalculation/"), {}, format="json")
    assert created.status_code == 201

    run_worker()

    latest = api.get(api.url(f"experiments/{experiment.id}/metrics_recalculation/latest/")).json()
    assert (latest["status"], latest["completed_metrics"]) == ("completed", 1)
    [entry] = latest["results"]
    queried = api.post(
        api.url("query/"),
        {"query": {"kind": "ExperimentQuery", "experiment_id": experiment.id, "metric": CONVERSION}},
        format="json",
    ).json()
    assert entry["result"]["baseline"] == queried["baseline"]
    assert entry["result"]["variant_results"] == queried["variant_results"]
    exposures = ExperimentMetricsRecalculation.objects.get().exposures
    assert exposures["total_exposures"] == {"control": 120, "test": 120}
    assert exposures["sample_ratio_mismatch"]["p_value"] == pytest.approx(1.0)


def test_jobs_run_without_the_web_requests_statement_timeout(
    api, project, recent_experiment, run_worker, settings
):
    experiment = recent_experiment
    send_two_days_of_traffic(project, experiment)
    # A timeout no real statement can meet: web computations would answer 504.
    settings.RESULTS_QUERY_TIMEOUT_SECONDS = 0.001
    api.post(api.url(f"experiments/{experiment.id}/metrics_recalculation/"), {}, format="json")

    run_worker()

    assert ExperimentMetricsRecalculation.objects.get().status == "completed"

"""`POST /api/projects/{id}/query/` with PostHog's experiment query kinds, over HTTP with a real key."""

import contextlib
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from results import queries
from results.models import QueryRun
from results.tasks import retry_stalled_jobs
from tests.factories import ExperimentFactory
from tests.results.conftest import queue_rows
from tests.results.events import at, event, exposure, running_experiment, send

pytestmark = pytest.mark.django_db

SUM_OF_AMOUNT = {
    "kind": "ExperimentMetric",
    "metric_type": "mean",
    "uuid": "0c1f1e4e-6a55-4c39-9d4b-3f3e6f3a0a01",
    "source": {"kind": "EventsNode", "event": "purchase", "math": "sum", "math_property": "amount"},
}


def experiment_query(experiment, metric=None, **extra) -> dict:
    return {
        "query": {
            "kind": "ExperimentQuery",
            "experiment_id": experiment.id,
            "metric": metric or SUM_OF_AMOUNT,
        },
        **extra,
    }


def exposure_query(experiment) -> dict:
    return {
        "query": {
            "kind": "ExperimentExposureQuery",
            "experiment_id": experiment.id,
            "experiment_name": experiment.name,
            "feature_flag": {"key": experiment.feature_flag.key},
        }
    }


def send_c4_fixture(project, experiment) -> None:
    """60 users per variant: control per-user amounts 10/11/12 (n 60, Σ 660, Σ² 7300), test 15/16/17
    (n 60, Σ 960, Σ² 15400) — the inputs of spec vector C4."""
    events = []
    for variant, amounts in (("control", (10, 11, 12)), ("test", (15, 16, 17))):
        for index in range(60):
            user = f"{variant}-{index}"
            events.append(exposure(experiment, user, variant, at(1)))
            events.append(event("purchase", user, at(2), amount=amounts[index % 3]))
    send(project, events)


def test_mean_metric_bayesian_result_matches_the_hand_computed_statistics(api, project):
    experiment = running_experiment(project)
    send_c4_fixture(project, experiment)
    response = api.post(api.url("query/"), experiment_query(experiment), format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["kind"] == "ExperimentQuery"
    baseline = body["baseline"]
    assert (baseline["key"], baseline["number_of_samples"], baseline["sum"], baseline["sum_squares"]) == (
        "control",
        60,
        660,
        7300,
    )
    assert baseline["validation_failures"] == []
    [test] = body["variant_results"]
    assert (test["key"], test["method"], test["number_of_samples"], test["sum"], test["sum_squares"]) == (
        "test",
        "bayesian",
        60,
        960,
        15400,
    )
    assert test["chance_to_win"] == pytest.approx(1.0)
    assert test["credible_interval"] == pytest.approx([0.4211135006, 0.4879774085], rel=1e-6)
    assert test["significant"] is True
    assert body["is_cached"] is False
    assert body["breakdown_results"] is None
    assert body["metric"] == SUM_OF_AMOUNT
    assert len(body["cache_key"]) == 64
    assert body["timezone"] == "UTC"
    assert body["last_refresh"] and body["cache_target_age"] and body["next_allowed_client_refresh"]


def test_frequentist_result(api, project):
    experiment = running_experiment(project, stats_config={"method": "frequentist"})
    send_c4_fixture(project, experiment)
    body = api.post(api.url("query/"), experiment_query(experiment), format="json").json()
    [test] = body["variant_results"]
    assert test["method"] == "frequentist"
    assert test["confidence_interval"] == pytest.approx([0.4207670937, 0.4883238154], rel=1e-6)
    assert test["p_value"] == pytest.approx(0.0, abs=1e-12)
    assert test["significant"] is True


def test_small_samples_have_validation_failures_and_no_statistics_b20(api, project):
    experiment = running_experiment(project, stats_config={"method": "frequentist"})
    events = []
    for index in range(20):
        events.append(exposure(experiment, f"u{index}", ("control", "test")[index % 2], at(1)))
        events.append(event("purchase", f"u{index}", at(2), amount=10 + index))
    send(project, events)
    body = api.post(api.url("query/"), experiment_query(experiment), format="json").json()
    assert body["baseline"]["number_of_samples"] == 10
    assert body["baseline"]["validation_failures"] == ["not-enough-exposures"]
    [test] = body["variant_results"]
    assert test["number_of_samples"] == 10
    assert test["sum"] == sum(10 + index for index in range(1, 20, 2))
    assert (test["p_value"], test["confidence_interval"], test["significant"]) == (None, None, None)


def test_funnel_result_carries_step_counts_and_zero_filled_variants(api, project):
    experiment = running_experiment(project, variants=[("control", 50), ("test", 25), ("empty", 25)])
    send(
        project,
        [
            exposure(experiment, "c1", "control", at(1)),
            exposure(experiment, "c2", "control", at(1)),
            event("purchase", "c1", at(2)),
            exposure(experiment, "t1", "test", at(1)),
        ],
    )
    metric = {
        "kind": "ExperimentMetric",
        "metric_type": "funnel",
        "series": [{"kind": "EventsNode", "event": "purchase"}],
    }
    body = api.post(api.url("query/"), experiment_query(experiment, metric), format="json").json()
    assert (
        body["baseline"]["number_of_samples"],
        body["baseline"]["sum"],
        body["baseline"]["step_counts"],
    ) == (2, 1, [1])
    assert [
        (item["key"], item["number_of_samples"], item["step_counts"]) for item in body["variant_results"]
    ] == [
        ("test", 1, [0]),
        ("empty", 0, [0]),
    ]


def test_cache_is_served_until_forced_and_a_change_to_the_experiment_recomputes(api, project):
    experiment = running_experiment(project)
    send(project, [exposure(experiment, "u1", "control", at(1)), event("purchase", "u1", at(2), amount=5)])
    first = api.post(api.url("query/"), experiment_query(experiment), format="json").json()
    send(project, [event("purchase", "u1", at(3), amount=7)])
    cached = api.post(api.url("query/"), experiment_query(experiment), format="json").json()
    assert cached["is_cached"] is True
    assert cached["cache_key"] == first["cache_key"]
    assert cached["baseline"]["sum"] == 5
    assert QueryRun.objects.filter(project=project).count() == 1
    forced = api.post(
        api.url("query/"), experiment_query(experiment, refresh="force_blocking"), format="json"
    ).json()
    assert (forced["is_cached"], forced["baseline"]["sum"]) == (False, 12)
    assert QueryRun.objects.filter(project=project).count() == 1
    experiment.name = "renamed"
    experiment.save()
    send(project, [event("purchase", "u1", at(4), amount=1)])
    changed = api.post(api.url("query/"), experiment_query(experiment), format="json").json()
    assert changed["is_cached"] is False
    assert changed["cache_key"] != first["cache_key"]
    assert changed["baseline"]["sum"] == 13


def test_force_cache_misses_without_computing(api, project):
    experiment = running_experiment(project)
    response = api.post(api.url("query/"), experiment_query(experiment, refresh="force_cache"), format="json")
    assert response.status_code == 200
    assert set(response.json()) == {"cache_key", "query_status"}
    assert response.json()["query_status"] is None
    assert not QueryRun.objects.exists()
    api.post(api.url("query/"), experiment_query(experiment), format="json")
    hit = api.post(api.url("query/"), experiment_query(experiment, refresh=False), format="json").json()
    assert hit["is_cached"] is True


def query_jobs() -> list[tuple]:
    return queue_rows(
        "SELECT args ->> 'run_id', queueing_lock, status FROM procrastinate_jobs"
        " WHERE task_name = 'results.run_query' ORDER BY id"
    )


def test_async_returns_a_query_status_and_reuses_the_active_run(api, project):
    experiment = running_experiment(project)
    first = api.post(api.url("query/"), experiment_query(experiment, refresh="async"), format="json")
    again = api.post(api.url("query/"), experiment_query(experiment, refresh="force_async"), format="json")
    assert first.status_code == 200
    status = first.json()["query_status"]
    assert status["complete"] is False and status["query_async"] is True and status["team_id"] == project.id
    assert again.json()["query_status"]["id"] == status["id"]
    assert query_jobs() == [(status["id"], f"results.query:{status['id']}", "todo")]
    polled = api.get(api.url(f"query/{status['id']}/"))
    assert polled.status_code == 200
    assert polled.json()["query_status"]["complete"] is False
    cancelled = api.delete(api.url(f"query/{status['id']}/"))
    assert cancelled.status_code == 204
    after = api.get(api.url(f"query/{status['id']}/")).json()["query_status"]
    assert (after["complete"], after["error"], after["results"]) == (True, True, None)
    assert QueryRun.objects.get(id=status["id"]).status == QueryRun.Status.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_async_run_is_computed_by_the_results_worker(project, make_api, run_worker):
    api = make_api(scopes=["query:read"])
    experiment = running_experiment(project)
    send(project, [exposure(experiment, "u1", "control", at(1)), event("purchase", "u1", at(2), amount=3)])
    status = api.post(api.url("query/"), experiment_query(experiment, refresh="async"), format="json").json()[
        "query_status"
    ]
    assert api.get(api.url(f"query/{status['id']}/")).json()["query_status"]["complete"] is False
    run_worker()
    status = api.get(api.url(f"query/{status['id']}/")).json()["query_status"]
    assert status["complete"] is True and status["error"] is False, status
    assert status["results"]["baseline"]["sum"] == 3
    assert status["pickup_time"] and status["end_time"]
    cached = api.post(api.url("query/"), experiment_query(experiment, refresh="async"), format="json").json()
    assert cached["is_cached"] is True and cached["baseline"]["sum"] == 3


@pytest.mark.django_db(transaction=True)
def test_a_run_cancelled_before_the_worker_picks_it_up_stays_cancelled(api, project, run_worker):
    experiment = running_experiment(project)
    status = api.post(api.url("query/"), experiment_query(experiment, refresh="async"), format="json").json()[
        "query_status"
    ]
    assert api.delete(api.url(f"query/{status['id']}/")).status_code == 204
    run_worker()
    after = api.get(api.url(f"query/{status['id']}/")).json()["query_status"]
    assert (after["complete"], after["error"], after["results"], after["pickup_time"]) == (
        True,
        True,
        None,
        None,
    )
    assert QueryRun.objects.get(id=status["id"]).status == QueryRun.Status.CANCELLED
    assert query_jobs() == []


def test_a_run_cancelled_while_the_worker_computes_it_keeps_the_cached_result(api, project, monkeypatch):
    """The worker's result of a run cancelled mid-computation is dropped, and so is nothing else:
    the key's earlier cached result is still served."""
    experiment = running_experiment(project)
    send(project, [exposure(experiment, "u1", "control", at(1)), event("purchase", "u1", at(2), amount=5)])
    cached = api.post(api.url("query/"), experiment_query(experiment), format="json").json()
    run_id = api.post(
        api.url("query/"), experiment_query(experiment, refresh="force_async"), format="json"
    ).json()["query_status"]["id"]
    compute = queries.compute

    def compute_then_cancel(experiment, query):
        result = compute(experiment, query)
        assert api.delete(api.url(f"query/{run_id}/")).status_code == 204
        return result

    monkeypatch.setattr(queries, "compute", compute_then_cancel)
    queries.query_run_execute(run_id=run_id)
    assert QueryRun.objects.get(id=run_id).status == QueryRun.Status.CANCELLED
    served = api.post(api.url("query/"), experiment_query(experiment, refresh=False), format="json").json()
    assert (served.get("is_cached"), served.get("cache_key")) == (True, cached["cache_key"])


@pytest.mark.django_db(transaction=True)
def test_concurrent_async_requests_for_one_query_share_one_run(api, project, monkeypatch):
    """Two requests that both find no active run for the key start one run (and one job) between
    them: each waits here until the other has looked too, or for two seconds when it cannot."""
    experiment = running_experiment(project)
    both_looked = threading.Barrier(2, timeout=2)
    active_run = queries.active_run

    def looked_then_wait(project, cache_key):
        found = active_run(project, cache_key)
        with contextlib.suppress(threading.BrokenBarrierError):
            both_looked.wait()
        return found

    monkeypatch.setattr(queries, "active_run", looked_then_wait)

    def ask() -> None:
        try:
            response = api.post(
                api.url("query/"), experiment_query(experiment, refresh="async"), format="json"
            )
            assert response.status_code == 200, response.content
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert QueryRun.objects.filter(project=project).count() == 1
    assert len(query_jobs()) == 1


def test_exposure_query_timeseries_totals_and_srm(api, project):
    experiment = running_experiment(project, end_date=at(2, hours=12))
    events = [exposure(experiment, f"c{index}", "control", at(0, hours=1)) for index in range(80)]
    events += [exposure(experiment, f"t{index}", "test", at(1, hours=1)) for index in range(20)]
    events += [exposure(experiment, "c0", "control", at(1, hours=2))]  # a repeat is counted once
    events += [exposure(experiment, "both", "control", at(0)), exposure(experiment, "both", "test", at(2))]
    send(project, events)
    response = api.post(api.url("query/"), exposure_query(experiment), format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["kind"] == "ExperimentExposureQuery"
    assert body["timeseries"] == [
        {
            "variant": "control",
            "days": ["2026-01-01", "2026-01-02", "2026-01-03"],
            "exposure_counts": [80, 80, 80],
        },
        {
            "variant": "test",
            "days": ["2026-01-01", "2026-01-02", "2026-01-03"],
            "exposure_counts": [0, 20, 20],
        },
        {
            "variant": "$multiple",
            "days": ["2026-01-01", "2026-01-02", "2026-01-03"],
            "exposure_counts": [1, 1, 1],
        },
    ]
    assert body["total_exposures"] == {"control": 80, "test": 20, "$multiple": 1}
    srm = body["sample_ratio_mismatch"]
    assert srm["expected"] == {"control": 50.0, "test": 50.0}
    assert srm["p_value"] < 0.001
    assert body["bias_risk"] is None  # an even split


def test_exposure_query_has_no_srm_below_100_exposures(api, project):
    experiment = running_experiment(project)
    send(
        project,
        [exposure(experiment, f"u{index}", ("control", "test")[index % 2], at(1)) for index in range(80)],
    )
    body = api.post(api.url("query/"), exposure_query(experiment), format="json").json()
    assert body["total_exposures"] == {"control": 40, "test": 40}
    assert body["sample_ratio_mismatch"] is None


def test_exposure_days_follow_the_project_timezone(api, project):
    project.timezone = "America/New_York"
    project.save()
    experiment = running_experiment(project, end_date=at(1, hours=12))
    send(project, [exposure(experiment, "late", "control", at(1, hours=2))])  # 21:00 on Jan 1 in New York
    body = api.post(api.url("query/"), exposure_query(experiment), format="json").json()
    assert body["timeseries"][0]["days"] == ["2025-12-31", "2026-01-01", "2026-01-02"]
    assert body["timeseries"][0]["exposure_counts"] == [0, 1, 1]


@pytest.mark.parametrize(
    ("body", "attr", "message"),
    [
        (
            {"query": {"kind": "HogQLQuery", "query": "select 1"}},
            "query",
            "Supported kinds: ExperimentQuery, ExperimentExposureQuery",
        ),
        ({"query": {"kind": "EventsQuery"}}, "query", "'EventsQuery' is not supported"),
        ({"query": "select 1"}, "query", "query object"),
        ({}, "query", "required"),
        (
            {"query": {"kind": "ExperimentQuery", "experiment_id": "1; drop", "metric": {}}},
            "experiment_id",
            "experiment id",
        ),
        (
            {"query": {"kind": "ExperimentQuery", "experiment_id": 10**30, "metric": {}}},
            "experiment_id",
            "experiment id",
        ),
    ],
)
def test_malformed_queries_are_400(api, body, attr, message):
    response = api.post(api.url("query/"), body, format="json")
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert response.json()["attr"] == attr
    assert message in response.json()["detail"]


def test_invalid_refresh_and_metric_are_400_and_store_nothing(api, project):
    experiment = running_experiment(project)
    bad_refresh = api.post(
        api.url("query/"), experiment_query(experiment, refresh="sometimes"), format="json"
    )
    assert bad_refresh.status_code == 400
    assert bad_refresh.json()["attr"] == "refresh"
    hogql = {
        "kind": "ExperimentMetric",
        "metric_type": "mean",
        "source": {"kind": "EventsNode", "event": "x", "math": "hogql"},
    }
    for refresh in ("blocking", "async", "force_cache"):
        response = api.post(
            api.url("query/"), experiment_query(experiment, hogql, refresh=refresh), format="json"
        )
        assert response.status_code == 400
        assert "HogQL" in response.json()["detail"]
    assert not QueryRun.objects.exists()


def test_experiments_of_other_projects_drafts_and_deleted_ones_are_400(api, project, other_project):
    foreign = running_experiment(other_project)
    draft = ExperimentFactory(project=project)
    deleted = running_experiment(project, deleted=True)
    for experiment, message in (
        (foreign, "does not exist"),
        (deleted, "does not exist"),
        (draft, "not been started"),
    ):
        response = api.post(api.url("query/"), experiment_query(experiment), format="json")
        assert response.status_code == 400
        assert message in response.json()["detail"]


def test_hostile_metric_values_are_4xx_never_500(api, project):
    experiment = running_experiment(project)
    send(
        project,
        [exposure(experiment, "u1", "control", at(1)), event("purchase", "u1", at(2), amount="1" * 5000)],
    )
    hostile_metrics = [
        {
            **SUM_OF_AMOUNT,
            "source": {**SUM_OF_AMOUNT["source"], "math_property": "'); drop table events_event; --"},
        },
        {
            **SUM_OF_AMOUNT,
            "source": {
                **SUM_OF_AMOUNT["source"],
                "properties": [{"key": "a", "value": "x" * 10000, "operator": "icontains"}],
            },
        },
        {
            **SUM_OF_AMOUNT,
            "source": {
                **SUM_OF_AMOUNT["source"],
                "properties": [{"key": "a", "value": "NaN", "operator": "gt"}],
            },
        },
        {**SUM_OF_AMOUNT, "source": {**SUM_OF_AMOUNT["source"], "properties": "not a list"}},
        {**SUM_OF_AMOUNT, "conversion_window": 10**12},
        {**SUM_OF_AMOUNT, "upper_bound_percentile": True},
        {
            "kind": "ExperimentMetric",
            "metric_type": "funnel",
            "series": [{"kind": "EventsNode", "event": "x"}] * 100,
        },
        {"kind": "ExperimentMetric", "metric_type": "retention"},
    ]
    for metric in hostile_metrics:
        response = api.post(
            api.url("query/"), experiment_query(experiment, metric, refresh="force_blocking"), format="json"
        )
        assert response.status_code in (200, 400), (metric, response.content)
    safe = api.post(api.url("query/"), experiment_query(experiment, refresh="force_blocking"), format="json")
    assert safe.json()["baseline"]["sum"] == 0  # a 5000-digit string is not a usable number


def test_query_read_scope_is_enough_and_required(make_api, project):
    experiment = running_experiment(project)
    allowed = make_api(scopes=["query:read"])
    assert allowed.post(allowed.url("query/"), experiment_query(experiment), format="json").status_code == 200
    refused = make_api(scopes=["experiment:read"])
    response = refused.post(refused.url("query/"), experiment_query(experiment), format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "API key missing required scope 'query:read'"


def test_query_runs_of_other_projects_are_not_found(api, other_project):
    foreign = QueryRun.objects.create(
        project=other_project, cache_key="k" * 64, query={"kind": "ExperimentQuery"}
    )
    assert api.get(api.url(f"query/{foreign.id}/")).status_code == 404
    assert api.delete(api.url(f"query/{foreign.id}/")).status_code == 404
    assert api.get(api.url("query/not-a-uuid/")).status_code == 404
    assert QueryRun.objects.get(id=foreign.id).status == QueryRun.Status.QUEUED


def test_an_abandoned_async_run_is_failed_and_replaced(api, project):
    experiment = running_experiment(project)
    first = api.post(api.url("query/"), experiment_query(experiment, refresh="async"), format="json").json()
    QueryRun.objects.filter(id=first["query_status"]["id"]).update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    second = api.post(api.url("query/"), experiment_query(experiment, refresh="async"), format="json").json()
    assert second["query_status"]["id"] != first["query_status"]["id"]
    assert [run_id for run_id, _, _ in query_jobs()] == [
        first["query_status"]["id"],
        second["query_status"]["id"],
    ]
    abandoned = api.get(api.url(f"query/{first['query_status']['id']}/")).json()["query_status"]
    assert (abandoned["complete"], abandoned["error"]) == (True, True)
    assert "did not finish" in abandoned["error_message"]


def test_bias_risk_is_reported_for_an_uneven_split_with_multiple_variant_users(api, project):
    experiment = running_experiment(project, variants=[("control", 70), ("test", 30)])
    events = [exposure(experiment, f"c{index}", "control", at(1)) for index in range(70)]
    events += [exposure(experiment, f"t{index}", "test", at(1)) for index in range(30)]
    events += [exposure(experiment, "both", "control", at(1)), exposure(experiment, "both", "test", at(2))]
    send(project, events)
    body = api.post(api.url("query/"), exposure_query(experiment), format="json").json()
    assert body["total_exposures"] == {"control": 70, "test": 30, "$multiple": 1}
    assert body["bias_risk"] == {"multiple_variant_percentage": pytest.approx(100 / 101, abs=1e-3)}
    assert body["sample_ratio_mismatch"]["expected"] == {"control": 70.0, "test": 30.0}
    assert body["sample_ratio_mismatch"]["p_value"] == pytest.approx(1.0)


@pytest.mark.django_db(transaction=True)
def test_a_run_left_running_by_a_crashed_worker_is_finished_by_the_retried_job(api, project, run_worker):
    experiment = running_experiment(project)
    send(project, [exposure(experiment, "u1", "control", at(1)), event("purchase", "u1", at(2), amount=3)])
    status = api.post(api.url("query/"), experiment_query(experiment, refresh="async"), format="json").json()[
        "query_status"
    ]
    # A worker took the job, marked the run running and died: its heartbeat stopped long ago.
    [(worker_id,)] = queue_rows(
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '10 minutes') RETURNING id"
    )
    queue_rows("UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s RETURNING id", worker_id)
    QueryRun.objects.filter(id=status["id"]).update(status=QueryRun.Status.RUNNING, started_at=timezone.now())
    retry_stalled_jobs.defer(timestamp=int(timezone.now().timestamp()))

    run_worker()

    finished = api.get(api.url(f"query/{status['id']}/")).json()["query_status"]
    assert finished["complete"] is True and finished["error"] is False, finished
    assert finished["results"]["baseline"]["sum"] == 3


@pytest.mark.django_db(transaction=True)
def test_a_first_delivery_never_takes_over_a_run_another_worker_is_computing(api, project, run_worker):
    experiment = running_experiment(project)
    status = api.post(api.url("query/"), experiment_query(experiment, refresh="async"), format="json").json()[
        "query_status"
    ]
    QueryRun.objects.filter(id=status["id"]).update(status=QueryRun.Status.RUNNING, started_at=timezone.now())

    run_worker()

    assert QueryRun.objects.get(id=status["id"]).status == QueryRun.Status.RUNNING


def test_without_a_task_queue_an_async_run_is_computed_in_the_request(
    api, project, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(queries, "_query_run_queue", None)
    experiment = running_experiment(project)
    send(project, [exposure(experiment, "u1", "control", at(1)), event("purchase", "u1", at(2), amount=3)])
    with django_capture_on_commit_callbacks(execute=True):
        status = api.post(
            api.url("query/"), experiment_query(experiment, refresh="async"), format="json"
        ).json()["query_status"]
    finished = api.get(api.url(f"query/{status['id']}/")).json()["query_status"]
    assert finished["complete"] is True and finished["error"] is False, finished
    assert finished["results"]["baseline"]["sum"] == 3
    assert queue_rows("SELECT count(*) FROM procrastinate_jobs") == [(0,)]


@pytest.mark.parametrize("lookback_days", ["²", "+-5", "9" * 5000])
def test_an_unreadable_stored_cuped_lookback_falls_back_instead_of_a_500(api, project, lookback_days):
    experiment = running_experiment(project)
    send_c4_fixture(project, experiment)
    patched = api.patch(
        api.url(f"experiments/{experiment.id}/"),
        {"stats_config": {"cuped": {"enabled": True, "lookback_days": lookback_days}}},
        format="json",
    )
    assert patched.status_code == 200, patched.content
    for refresh in ("blocking", "force_blocking"):
        response = api.post(api.url("query/"), experiment_query(experiment, refresh=refresh), format="json")
        assert response.status_code == 200, response.content
        assert response.json()["baseline"]["number_of_samples"] == 60

"""Writes cost a fixed, small number of queries (issue 14 item 7): the view finds the experiment
once, the service reads it once more under its lock with everything the response shows, and the
response is rendered from that read instead of reading the row a third time."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments import validation
from tests.experiments.helpers import create_experiment, mean_metric, variants
from tests.factories import ExperimentHoldoutFactory, ExperimentSavedMetricFactory

pytestmark = pytest.mark.django_db

EXPERIMENT_ROW_READ = 'FROM "experiments_experiment"'


def experiment_row_reads(captured: CaptureQueriesContext) -> list[str]:
    return [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].startswith("SELECT") and EXPERIMENT_ROW_READ in query["sql"]
    ]


def write(api, method: str, path: str, body: dict, max_queries: int):
    with CaptureQueriesContext(connection) as captured:
        response = getattr(api, method)(api.url(path), body, format="json")
    assert response.status_code == 200, response.json()
    assert len(captured.captured_queries) <= max_queries, [q["sql"][:120] for q in captured.captured_queries]
    reads = experiment_row_reads(captured)
    assert len(reads) == 2, reads
    assert reads[1].endswith('FOR UPDATE OF "experiments_experiment"')
    return response


# Before issue 14 item 7: PATCH name 15, PATCH flag configuration 21, launch 20, reset 14.
@pytest.mark.parametrize(
    ("body", "max_queries"),
    [
        ({"name": "Renamed"}, 11),
        ({"parameters": {"feature_flag_variants": variants(("control", 30), ("test", 70))}}, 16),
        ({"start_date": "2024-01-01T00:00:00Z"}, 16),
    ],
)
def test_patch_reads_the_experiment_once_under_its_lock(api, body, max_queries):
    experiment = create_experiment(api, metrics=[mean_metric()])
    response = write(api, "patch", f"experiments/{experiment['id']}/", body, max_queries)
    assert response.json() == api.get(api.url(f"experiments/{experiment['id']}/")).json()


@pytest.mark.parametrize(("action", "max_queries"), [("launch", 16), ("reset", 11)])
def test_launch_and_reset_read_the_experiment_once_under_its_lock(api, action, max_queries):
    experiment = create_experiment(api, metrics=[mean_metric()])
    if action == "reset":
        api.post(api.url(f"experiments/{experiment['id']}/launch/"), {}, format="json")
    response = write(api, "post", f"experiments/{experiment['id']}/{action}/", {}, max_queries)
    assert response.json() == api.get(api.url(f"experiments/{experiment['id']}/")).json()


def test_a_write_answers_what_a_read_afterwards_shows(api):
    """The answer is rendered from the service's locked read: links changed by the PATCH, the
    holdout and its author, the flag the PATCH rewrote are all as a fresh read shows them."""
    holdout = ExperimentHoldoutFactory(project=api.project)
    saved_metric = ExperimentSavedMetricFactory(project=api.project)
    experiment = create_experiment(api, metrics=[mean_metric()])
    response = api.patch(
        api.url(f"experiments/{experiment['id']}/"),
        {
            "holdout_id": holdout.id,
            "saved_metrics_ids": [{"id": saved_metric.id, "metadata": {"type": "primary"}}],
            "parameters": {"feature_flag_variants": variants(("control", 20), ("test", 80))},
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["holdout"]["id"] == holdout.id
    assert [link["saved_metric"] for link in body["saved_metrics"]] == [saved_metric.id]
    assert body == api.get(api.url(f"experiments/{experiment['id']}/")).json()


def test_create_answers_what_a_read_afterwards_shows(api, django_assert_max_num_queries):
    """Create renders the experiment it made (with its new flag, links and holdout) without
    reading it back: 23 queries before issue 14 item 7, for this body without a holdout."""
    holdout = ExperimentHoldoutFactory(project=api.project)
    saved_metric = ExperimentSavedMetricFactory(project=api.project)
    with django_assert_max_num_queries(22):
        response = api.post(
            api.url("experiments/"),
            {"name": "Plain", "feature_flag_key": "plain", "metrics": [mean_metric()]},
            format="json",
        )
    assert response.status_code == 201, response.json()
    plain = response.json()
    created = create_experiment(
        api,
        holdout_id=holdout.id,
        saved_metrics_ids=[{"id": saved_metric.id, "metadata": {"type": "secondary"}}],
        metrics=[mean_metric()],
        parameters={"feature_flag_variants": variants(("control", 40), ("test", 60)), "custom": 1},
        stats_config={"method": "frequentist"},
        start_date="2024-01-01T00:00:00Z",
        tags=["Beta"],
    )
    for body in (plain, created):
        assert body == api.get(api.url(f"experiments/{body['id']}/")).json()


@pytest.mark.parametrize("method", ["post", "patch"])
def test_parameter_variants_are_validated_once_per_request(api, monkeypatch, method):
    checked = []
    check = validation.validate_parameter_variants

    def counted(variants_sent):
        checked.append(variants_sent)
        return check(variants_sent)

    monkeypatch.setattr(validation, "validate_parameter_variants", counted)
    body = {"parameters": {"feature_flag_variants": variants(("Control", 30), ("test", 70))}}
    if method == "post":
        response = api.post(
            api.url("experiments/"), {"name": "E", "feature_flag_key": "e", **body}, format="json"
        )
    else:
        experiment = create_experiment(api)
        checked.clear()
        response = api.patch(api.url(f"experiments/{experiment['id']}/"), body, format="json")
    assert response.status_code in (200, 201), response.json()
    assert len(checked) == 1
    assert [variant["key"] for variant in response.json()["parameters"]["feature_flag_variants"]] == [
        "control",
        "test",
    ]

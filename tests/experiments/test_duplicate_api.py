import pytest

from experiments.models import Experiment, ExperimentToSavedMetric
from flags.models import FeatureFlag
from tests.factories import (
    ExperimentFactory,
    ExperimentHoldoutFactory,
    ExperimentSavedMetricFactory,
    FeatureFlagFactory,
    ProjectFactory,
    multivariate_filters,
)

pytestmark = pytest.mark.django_db

METRIC = {
    "kind": "ExperimentMetric",
    "metric_type": "mean",
    "uuid": "11111111-1111-4111-8111-111111111111",
    "source": {"kind": "EventsNode", "event": "purchase"},
}


@pytest.fixture
def source(api):
    response = api.post(
        api.url("experiments/"),
        {
            "name": "Original Experiment",
            "description": "why",
            "feature_flag_key": "original-flag",
            "metrics": [METRIC],
            "stats_config": {"method": "frequentist"},
            "exposure_criteria": {"filterTestAccounts": False},
            "parameters": {"variant_notes": {"control": "as is"}},
        },
        format="json",
    )
    assert response.status_code == 201
    return response.json()


def test_duplicate_copies_setup_and_shares_the_flag(api, source):
    response = api.post(api.url(f"experiments/{source['id']}/duplicate/"), {}, format="json")
    assert response.status_code == 201
    copy = response.json()
    assert copy["id"] != source["id"]
    assert copy["name"] == "Original Experiment (Copy)"
    for field in ("description", "type", "parameters", "filters", "stats_config", "exposure_criteria"):
        assert copy[field] == source[field], field
    assert copy["feature_flag"]["id"] == source["feature_flag"]["id"]
    assert copy["feature_flag_key"] == "original-flag"
    assert (copy["start_date"], copy["end_date"], copy["archived"], copy["deleted"]) == (
        None,
        None,
        False,
        False,
    )
    assert copy["status"] == "draft"
    assert copy["metrics"][0]["uuid"] != source["metrics"][0]["uuid"]
    assert {k: v for k, v in copy["metrics"][0].items() if k not in ("uuid", "fingerprint")} == {
        k: v for k, v in source["metrics"][0].items() if k not in ("uuid", "fingerprint")
    }
    assert copy["primary_metrics_ordered_uuids"] == [copy["metrics"][0]["uuid"]]


def test_second_duplicate_gets_a_numbered_name(api, source):
    api.post(api.url(f"experiments/{source['id']}/duplicate/"), {}, format="json")
    response = api.post(api.url(f"experiments/{source['id']}/duplicate/"), {}, format="json")
    assert response.json()["name"] == "Original Experiment (Copy) 1"


def test_duplicates_of_a_longest_name_shorten_it_to_fit(api):
    name = "n" * 400
    response = api.post(
        api.url("experiments/"), {"name": name, "feature_flag_key": "long-name"}, format="json"
    )
    assert response.status_code == 201
    duplicate = api.url(f"experiments/{response.json()['id']}/duplicate/")
    first, second = (api.post(duplicate, {}, format="json") for _ in range(2))
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["name"] == "n" * 393 + " (Copy)"
    assert second.json()["name"] == "n" * 391 + " (Copy) 1"


def test_a_shared_flag_pauses_for_both(api, source):
    copy = api.post(api.url(f"experiments/{source['id']}/duplicate/"), {}, format="json").json()
    assert api.post(api.url(f"experiments/{source['id']}/launch/")).status_code == 200
    assert api.post(api.url(f"experiments/{copy['id']}/launch/")).status_code == 200
    assert api.post(api.url(f"experiments/{source['id']}/pause/")).json()["status"] == "paused"
    assert api.get(api.url(f"experiments/{copy['id']}/")).json()["status"] == "paused"


def test_duplicate_onto_another_existing_flag_uses_its_variants(api, source):
    FeatureFlagFactory(
        project=api.project,
        key="other-flag",
        filters=multivariate_filters([("control", 34), ("new-variant-1", 33), ("new-variant-2", 33)]),
    )
    response = api.post(
        api.url(f"experiments/{source['id']}/duplicate/"), {"feature_flag_key": "other-flag"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["feature_flag"]["key"] == "other-flag"
    assert body["parameters"]["feature_flag_variants"] == [
        {"key": "control", "rollout_percentage": 34, "split_percent": 34},
        {"key": "new-variant-1", "rollout_percentage": 33, "split_percent": 33},
        {"key": "new-variant-2", "rollout_percentage": 33, "split_percent": 33},
    ]


def test_duplicate_with_a_new_key_creates_an_inactive_flag_with_the_source_config(api):
    source = ExperimentFactory(project=api.project, start_date="2024-01-01T00:00:00Z")
    source.feature_flag.filters = {
        **multivariate_filters([("control", 30), ("test", 70)]),
        "payloads": {"test": '{"color": "blue"}'},
    }
    source.feature_flag.ensure_experience_continuity = True
    source.feature_flag.active = True
    source.feature_flag.save()
    response = api.post(
        api.url(f"experiments/{source.id}/duplicate/"), {"feature_flag_key": "brand-new"}, format="json"
    )
    assert response.status_code == 201
    flag = FeatureFlag.objects.get(key="brand-new")
    assert flag.active is False
    assert [(v["key"], v["rollout_percentage"]) for v in flag.variants] == [("control", 30), ("test", 70)]
    assert flag.filters["payloads"] == {"test": '{"color": "blue"}'}
    assert flag.ensure_experience_continuity is True


def test_invalid_key_creates_nothing(api, source):
    before = Experiment.objects.count(), FeatureFlag.objects.count()
    response = api.post(
        api.url(f"experiments/{source['id']}/duplicate/"), {"feature_flag_key": ""}, format="json"
    )
    assert response.status_code == 400
    assert (Experiment.objects.count(), FeatureFlag.objects.count()) == before
    assert not Experiment.objects.filter(name__contains="(Copy)").exists()


def test_duplicate_copies_saved_metric_links_but_not_holdout_or_dates(api):
    holdout = ExperimentHoldoutFactory(project=api.project)
    saved = ExperimentSavedMetricFactory(project=api.project)
    source = api.post(
        api.url("experiments/"),
        {
            "name": "S",
            "feature_flag_key": "s-flag",
            "holdout_id": holdout.id,
            "start_date": "2024-01-01T00:00:00Z",
            "saved_metrics_ids": [{"id": saved.id, "metadata": {"type": "secondary"}}],
        },
        format="json",
    ).json()
    copy = api.post(
        api.url(f"experiments/{source['id']}/duplicate/"), {"feature_flag_key": "s-copy"}, format="json"
    )
    assert copy.status_code == 201
    body = copy.json()
    assert body["holdout"] is None and body["start_date"] is None
    assert [link["saved_metric"] for link in body["saved_metrics"]] == [saved.id]
    assert ExperimentToSavedMetric.objects.get(experiment_id=body["id"]).metadata == {"type": "secondary"}


def test_legacy_experiment_cannot_be_duplicated(api):
    legacy = ExperimentFactory(
        project=api.project, metrics=[{"kind": "ExperimentTrendsQuery", "count_query": {}}]
    )
    response = api.post(api.url(f"experiments/{legacy.id}/duplicate/"), {}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "Duplication is not supported for experiments using legacy metrics."


def test_copy_to_project(api, source):
    holdout_source = Experiment.objects.get(pk=source["id"])
    holdout_source.holdout = ExperimentHoldoutFactory(project=api.project)
    holdout_source.save()
    target = ProjectFactory(organization=api.project.organization)
    response = api.post(
        api.url(f"experiments/{source['id']}/copy_to_project/"), {"target_team_id": target.id}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    copy = Experiment.objects.get(pk=body["id"])
    assert copy.project_id == target.id
    assert body["holdout"] is None and body["saved_metrics"] == []
    assert body["metrics"][0]["uuid"] != source["metrics"][0]["uuid"]
    assert copy.feature_flag.project_id == target.id
    assert copy.feature_flag.active is False


def test_copy_to_project_reuses_the_target_flag_with_the_same_key(api, source):
    target = ProjectFactory(organization=api.project.organization)
    existing = FeatureFlagFactory(project=target, key="original-flag")
    response = api.post(
        api.url(f"experiments/{source['id']}/copy_to_project/"), {"target_team_id": target.id}, format="json"
    )
    assert response.json()["feature_flag"]["id"] == existing.id


def test_copy_to_project_errors(api, source, other_project):
    missing = api.post(api.url(f"experiments/{source['id']}/copy_to_project/"), {}, format="json")
    assert missing.status_code == 400
    assert missing.json()["attr"] == "target_team_id"
    foreign = api.post(
        api.url(f"experiments/{source['id']}/copy_to_project/"),
        {"target_team_id": other_project.id},
        format="json",
    )
    assert foreign.status_code == 404
    assert foreign.json()["detail"] == "Target team not found."
    assert not Experiment.objects.filter(project=other_project).exists()


def test_copy_to_project_respects_project_scoped_keys(make_api, project, source):
    target = ProjectFactory(organization=project.organization)
    client = make_api(scoped_teams=[project.id])
    response = client.post(
        f"/api/projects/{project.id}/experiments/{source['id']}/copy_to_project/",
        {"target_team_id": target.id},
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "You do not have write access to the target project."

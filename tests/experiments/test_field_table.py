"""The experiment field table (`experiments/fields.py`) is what the serializers accept and render,
what the representations show, and what PATCH and activity know about: nothing can drift apart."""

import pytest

from activity.models import ActivityLog
from experiments.fields import EXPERIMENT_FIELDS, TRACKED_FIELDS, UPDATABLE_FIELDS, Write
from experiments.models import Experiment
from experiments.serializers import ExperimentBasicSerializer, ExperimentSerializer
from tests.experiments.helpers import create_experiment

pytestmark = pytest.mark.django_db


def readable_fields(serializer_class) -> list[str]:
    return [name for name, field in serializer_class().fields.items() if not field.write_only]


def test_the_detail_and_list_bodies_show_the_serializers_fields_in_table_order(api):
    experiment = create_experiment(api)
    detail = api.get(api.url(f"experiments/{experiment['id']}/")).json()
    listed = api.get(api.url("experiments/")).json()["results"][0]
    assert list(detail) == readable_fields(ExperimentSerializer)
    assert list(listed) == readable_fields(ExperimentBasicSerializer)
    assert list(detail) == [field.name for field in EXPERIMENT_FIELDS]


def test_every_writable_field_is_writable_in_the_serializer_and_known_to_patch_and_activity():
    fields = ExperimentSerializer().fields
    model_fields = {field.name for field in Experiment._meta.get_fields()} | {"holdout_id"}
    for row in EXPERIMENT_FIELDS:
        assert fields[row.name].read_only is (row.write is Write.NEVER), row.name
        if row.write is not Write.NEVER:
            assert (row.key in UPDATABLE_FIELDS) is (row.write is Write.ALWAYS), row.name
        if row.stored:
            assert row.name in model_fields, row.name
            assert (row.name in TRACKED_FIELDS) is (row.write is not Write.NEVER), row.name


def test_tags_are_a_plain_field_of_the_table(api):
    """Added by one table row (with its model field and migration), tags are accepted on create,
    trimmed and lowercased, shown in the detail and the list, changed by PATCH and logged."""
    experiment = create_experiment(api, tags=[" Checkout ", "checkout", "Beta"])
    assert experiment["tags"] == ["checkout", "beta"]
    listed = api.get(api.url("experiments/")).json()["results"][0]
    assert listed["tags"] == ["checkout", "beta"]
    untagged = create_experiment(api)
    assert untagged["tags"] == []

    response = api.patch(api.url(f"experiments/{experiment['id']}/"), {"tags": ["pricing"]}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["tags"] == ["pricing"]
    assert Experiment.objects.get(pk=experiment["id"]).tags == ["pricing"]
    entry = ActivityLog.objects.filter(item_id=str(experiment["id"]), activity="updated").get()
    assert [change["field"] for change in entry.detail["changes"]] == ["tags"]
    assert entry.detail["changes"][0]["before"] == ["checkout", "beta"]

    response = api.patch(api.url(f"experiments/{experiment['id']}/"), {"tags": "pricing"}, format="json")
    assert response.status_code == 400
    assert response.json()["attr"] == "tags"


def test_the_list_filters_on_tags(api):
    tagged = create_experiment(api, name="Tagged", tags=["beta"])
    create_experiment(api, name="Other", tags=["pricing"])
    create_experiment(api, name="Untagged")
    response = api.get(api.url("experiments/"), {"tags": '["Beta", "checkout"]'})
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [tagged["id"]]
    for invalid in ('{"beta": 1}', "[" * 5000, "[" * 5000 + "]" * 5000):
        response = api.get(api.url("experiments/"), {"tags": invalid})
        assert response.status_code == 400, invalid[:20]
        assert response.json()["attr"] == "tags"

"""Request handling: unknown fields are ignored and named in `Ignored-Fields` (as PostHog ignores
them), and refused under `Prefer: handling=strict` (RFC 7240), answered with `Preference-Applied`."""

import pytest

from experiments.models import Experiment
from flags.models import FeatureFlag
from tests.experiments.helpers import create_experiment, validation_error
from tests.factories import ExperimentFactory

pytestmark = pytest.mark.django_db

STRICT = {"HTTP_PREFER": "handling=strict"}
FLAG_FROM_THE_AGENT_TOOLKIT = {
    "key": "toolkit-flag",
    "name": "Toolkit flag",
    "description": "The toolkit always sends a description",
    "active": True,
    "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]},
}


def test_a_flag_with_fields_this_server_does_not_know_is_created_and_they_are_named(api):
    response = api.post(api.url("feature_flags/"), FLAG_FROM_THE_AGENT_TOOLKIT, format="json")
    assert response.status_code == 201, response.json()
    assert response["Ignored-Fields"] == "description"
    assert "Preference-Applied" not in response
    assert FeatureFlag.objects.get(key="toolkit-flag").name == "Toolkit flag"


def test_under_strict_handling_the_unknown_field_is_refused_and_nothing_is_created(api):
    response = api.post(api.url("feature_flags/"), FLAG_FROM_THE_AGENT_TOOLKIT, format="json", **STRICT)
    assert response.status_code == 400
    assert response.json() == validation_error("Unknown field.", "description", "unknown_field")
    assert response["Preference-Applied"] == "handling=strict"
    assert not FeatureFlag.objects.exists()


def test_an_experiment_with_agent_extras_is_created(api):
    response = api.post(
        api.url("experiments/"),
        {"name": "E", "feature_flag_key": "e-flag", "draft": True, "variants": [{"key": "control"}]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response["Ignored-Fields"] == "draft, variants"
    assert Experiment.objects.get().name == "E"


def test_nothing_ignored_means_no_header(api):
    experiment = create_experiment(api)
    response = api.patch(api.url(f"experiments/{experiment['id']}/"), {"name": "New"}, format="json")
    assert response.status_code == 200
    assert "Ignored-Fields" not in response


def test_a_read_object_sent_back_whole_is_accepted_with_nothing_ignored(api):
    experiment = create_experiment(api)
    response = api.put(api.url(f"experiments/{experiment['id']}/"), experiment, format="json")
    assert response.status_code == 200, response.json()
    assert "Ignored-Fields" not in response


def test_action_bodies_of_posthogs_document_are_accepted(api):
    """PostHog's document gives `duplicate/` an Experiment body: a client sends the experiment."""
    experiment = create_experiment(api)
    response = api.post(
        api.url(f"experiments/{experiment['id']}/duplicate/"),
        {**experiment, "feature_flag_key": "copy-flag", "name": "Copy"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["name"] == "Copy"
    ignored = response["Ignored-Fields"].split(", ")
    assert "metrics" in ignored and "parameters" in ignored and "name" not in ignored


def test_end_ignores_a_field_meant_for_another_action_and_strict_refuses_it(api):
    experiment = ExperimentFactory(project=api.project, start_date="2024-01-01T00:00:00Z")
    path = api.url(f"experiments/{experiment.id}/end/")
    refused = api.post(path, {"conclusion": "won", "variant_key": "test"}, format="json", **STRICT)
    assert refused.status_code == 400
    assert refused.json()["attr"] == "variant_key"
    assert Experiment.objects.get(pk=experiment.id).end_date is None
    ended = api.post(path, {"conclusion": "won", "variant_key": "test"}, format="json")
    assert ended.status_code == 200
    assert ended["Ignored-Fields"] == "variant_key"
    assert ended.json()["conclusion"] == "won"


@pytest.mark.parametrize(
    "prefer, applied",
    [
        ("handling=strict", "handling=strict"),
        ("respond-async, handling=strict; extra", "handling=strict"),
        ('HANDLING="STRICT"', "handling=strict"),
        ("handling=lenient", "handling=lenient"),
        ("return=minimal", None),
        ("handling=sloppy", None),
    ],
)
def test_the_prefer_header_is_read_as_rfc_7240_says(api, prefer, applied):
    response = api.post(
        api.url("feature_flags/"), {"key": "k", "bogus": 1}, format="json", HTTP_PREFER=prefer
    )
    assert response.get("Preference-Applied") == applied
    assert response.status_code == (400 if applied == "handling=strict" else 201)


def test_hostile_field_names_cannot_break_or_bloat_the_header(api):
    body = {"key": "k", "new\nline": 1, "ü" * 300: 2, **{f"extra{number:02}": number for number in range(55)}}
    response = api.post(api.url("feature_flags/"), body, format="json")
    assert response.status_code == 201
    header = response["Ignored-Fields"]
    assert "\n" not in header and header.isascii()
    names = header.split(", ")
    assert names[0] == "extra00" and names[-1] == "(7 more)"
    assert len(names) == 51
    assert len(header) < 2000


def test_a_field_name_ending_in_a_newline_is_quoted_in_the_header(api):
    """`$` in a regular expression also matches before a final newline: such a name passed as plain
    and the header with a newline in it answered 500 (found by `make fuzz` on a form-encoded archive)."""
    experiment = create_experiment(api)
    response = api.client.post(
        api.url(f"experiments/{experiment['id']}/archive/"),
        "t%0A=1&disable_feature_flag=true",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code in (200, 400), response.content
    assert response["Ignored-Fields"] == '"t\\n"'
    created = api.post(api.url("feature_flags/"), {"key": "k", "tail\n": 1}, format="json")
    assert created.status_code == 201
    assert created["Ignored-Fields"] == '"tail\\n"'


def test_the_sdk_endpoints_do_not_claim_the_preference(api):
    response = api.post(
        "/flags/?v=2",
        {"token": api.project.api_token, "distinct_id": "u", "unknown": 1},
        format="json",
        **STRICT,
    )
    assert response.status_code == 200
    assert "Preference-Applied" not in response


def test_a_body_of_many_unknown_keys_is_answered_with_a_short_header(api):
    body = {"key": "many", **{f"unknown{number}": number for number in range(50_000)}}
    response = api.post(api.url("feature_flags/"), body, format="json")
    assert response.status_code == 201
    assert response["Ignored-Fields"].endswith("(49950 more)")

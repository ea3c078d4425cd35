"""Local-evaluation definitions: `GET /flags/definitions` and `/api/feature_flag/local_evaluation/`."""

import json

import pytest
from django.test import Client

from accounts.models import OrganizationMembership, PersonalAPIKey
from accounts.services import (
    personal_api_key_roll,
    project_secret_api_key_revoke_backup,
    project_secret_api_key_rotate,
)
from tests.conftest import keyed_client
from tests.factories import CohortFactory, FeatureFlagFactory, GroupTypeMappingFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    return Client()


def get_definitions(client, project, secret, path="/flags/definitions", **headers):
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return client.get(f"{path}?token={project.api_token}&send_cohorts", headers=headers)


def test_body_shape_sorted_by_key(client, project, api):
    GroupTypeMappingFactory(project=project, group_type="company", group_type_index=0)
    GroupTypeMappingFactory(project=project, group_type="organization", group_type_index=1)
    zebra = FeatureFlagFactory(project=project, key="zebra", active=False, version=2)
    alpha = FeatureFlagFactory(project=project, key="alpha")
    FeatureFlagFactory(project=project, key="deleted", deleted=True)

    response = get_definitions(client, project, api.secret)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"flags", "group_type_mapping", "cohorts"}
    assert [flag["key"] for flag in body["flags"]] == ["alpha", "zebra"]
    assert body["group_type_mapping"] == {"0": "company", "1": "organization"}
    assert body["cohorts"] == {}
    assert body["flags"][1] == {
        "id": zebra.id,
        "team_id": project.id,
        "name": zebra.name,
        "key": "zebra",
        "filters": zebra.filters,
        "deleted": False,
        "active": False,
        "ensure_experience_continuity": False,
        "has_encrypted_payloads": False,
        "version": 2,
        "evaluation_runtime": "all",
        "evaluation_tags": [],
        "has_experiment": False,
    }
    assert body["flags"][0]["id"] == alpha.id


def test_old_sdk_path_serves_the_same_body(client, project, api):
    FeatureFlagFactory(project=project, key="alpha")
    new = get_definitions(client, project, api.secret)
    for path in [
        "/api/feature_flag/local_evaluation/",
        "/api/feature_flag/local_evaluation",
        "/flags/definitions/",
    ]:
        old = get_definitions(client, project, api.secret, path=path)
        assert old.status_code == 200, path
        assert old.content == new.content
        assert old["ETag"] == new["ETag"]


def test_weak_etag_and_304(client, project, api):
    FeatureFlagFactory(project=project, key="alpha")
    first = get_definitions(client, project, api.secret)
    etag = first["ETag"]
    assert etag.startswith('W/"') and etag.endswith('"')
    assert first["Cache-Control"] == "private, must-revalidate"

    again = get_definitions(client, project, api.secret, **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    strong = get_definitions(client, project, api.secret, **{"If-None-Match": etag.removeprefix("W/")})
    assert strong.status_code == 304
    other = get_definitions(client, project, api.secret, **{"If-None-Match": 'W/"something-else"'})
    assert other.status_code == 200


def test_the_full_answer_and_the_304_carry_their_headers_in_order(client, project, api):
    FeatureFlagFactory(project=project, key="alpha")
    full = get_definitions(client, project, api.secret)
    etag = full["ETag"]
    not_modified = get_definitions(client, project, api.secret, **{"If-None-Match": etag})

    def headers(response) -> list[tuple[str, str]]:
        return [(name, value) for name, value in response.items() if name != "X-Request-ID"]

    stack = [
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    validators = [("ETag", etag), ("Cache-Control", "private, must-revalidate")]
    assert headers(full) == [
        ("Content-Type", "application/json"),
        *validators,
        ("X-Frame-Options", "DENY"),
        ("Content-Length", str(len(full.content))),
        *stack,
    ]
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert headers(not_modified) == [
        ("Content-Type", "text/html; charset=utf-8"),
        *validators,
        ("X-Frame-Options", "DENY"),
        ("Content-Length", "0"),
        *stack,
    ]


def test_the_token_is_the_last_one_in_the_query_decoded(client, project, api):
    encoded_token = project.api_token.replace("_", "%5F")
    served = client.get(
        f"/flags/definitions?token=phc_unknown&token={encoded_token}&send_cohorts",
        headers={"Authorization": f"Bearer {api.secret}"},
    )
    assert served.status_code == 200
    assert served.content == get_definitions(client, project, api.secret).content
    refused = client.get(
        f"/flags/definitions?token={encoded_token}&token=phc_unknown&send_cohorts",
        headers={"Authorization": f"Bearer {api.secret}"},
    )
    assert refused.status_code == 401


def test_etag_changes_with_every_flag_change(client, project, api, django_capture_on_commit_callbacks):
    flag = FeatureFlagFactory(project=project, key="alpha")
    seen = {get_definitions(client, project, api.secret)["ETag"]}

    def change(action):
        with django_capture_on_commit_callbacks(execute=True):
            action()
        response = get_definitions(client, project, api.secret)
        assert response["ETag"] not in seen
        seen.add(response["ETag"])
        return response.json()

    def pause():
        flag.active = False
        flag.save()

    assert change(pause)["flags"][0]["active"] is False

    def reroll():
        flag.filters = {**flag.filters, "groups": [{"properties": [], "rollout_percentage": 10}]}
        flag.save()

    assert change(reroll)["flags"][0]["filters"]["groups"][0]["rollout_percentage"] == 10
    assert len(change(lambda: FeatureFlagFactory(project=project, key="beta"))["flags"]) == 2
    assert change(lambda: GroupTypeMappingFactory(project=project))["group_type_mapping"] == {"0": "company"}
    assert [f["key"] for f in change(flag.delete)["flags"]] == ["beta"]


def test_referenced_dynamic_cohorts_are_served(client, project, api):
    nested = CohortFactory(
        project=project, filters={"properties": {"type": "AND", "values": [{"key": "plan", "value": "pro"}]}}
    )
    outer = CohortFactory(
        project=project,
        filters={
            "properties": {"type": "OR", "values": [{"key": "id", "value": nested.id, "type": "cohort"}]}
        },
    )
    static = CohortFactory(project=project, is_static=True)
    legacy = CohortFactory(
        project=project, filters={}, groups=[{"properties": [{"key": "country", "value": "us"}]}]
    )
    CohortFactory(project=project)  # not referenced
    FeatureFlagFactory(
        project=project,
        key="cohort-flag",
        filters={
            "groups": [
                {"properties": [{"key": "id", "value": cohort.id, "type": "cohort"}]}
                for cohort in (outer, static, legacy)
            ]
        },
    )
    cohorts = get_definitions(client, project, api.secret).json()["cohorts"]
    assert cohorts == {
        str(nested.id): nested.filters["properties"],
        str(outer.id): outer.filters["properties"],
        str(legacy.id): {
            "type": "OR",
            "values": [{"type": "AND", "values": [{"key": "country", "value": "us"}]}],
        },
    }


def test_flag_dependencies_get_their_chain(client, project, api):
    FeatureFlagFactory(project=project, key="base", filters={"groups": [{"properties": []}]})
    FeatureFlagFactory(
        project=project,
        key="child",
        filters={
            "groups": [
                {
                    "properties": [
                        {"key": "base", "type": "flag", "operator": "flag_evaluates_to", "value": True}
                    ]
                }
            ]
        },
    )
    FeatureFlagFactory(
        project=project,
        key="grandchild",
        filters={
            "groups": [
                {
                    "properties": [
                        {"key": "child", "type": "flag", "operator": "flag_evaluates_to", "value": True}
                    ]
                }
            ]
        },
    )
    flags = {flag["key"]: flag for flag in get_definitions(client, project, api.secret).json()["flags"]}
    # The chain lists what to evaluate first and ends with the referenced flag.
    assert flags["child"]["filters"]["groups"][0]["properties"][0]["dependency_chain"] == ["base"]
    assert flags["grandchild"]["filters"]["groups"][0]["properties"][0]["dependency_chain"] == [
        "base",
        "child",
    ]


# --- authentication ----------------------------------------------------------------------------------


def test_project_secret_key(client, project):
    FeatureFlagFactory(project=project, key="alpha")
    first = project_secret_api_key_rotate(project=project)
    assert first.secret.startswith("phs_") and len(first.secret) == 47
    assert get_definitions(client, project, first.secret).status_code == 200

    second = project_secret_api_key_rotate(project=project)
    assert get_definitions(client, project, second.secret).status_code == 200
    assert get_definitions(client, project, first.secret).status_code == 200  # kept as the backup

    project_secret_api_key_revoke_backup(project=project)
    assert get_definitions(client, project, first.secret).status_code == 401
    assert get_definitions(client, project, second.secret).status_code == 200


def test_a_secret_key_of_another_project_is_refused(client, project, other_project):
    other_secret = project_secret_api_key_rotate(project=other_project).secret
    response = get_definitions(client, project, other_secret)
    assert response.status_code == 401
    assert response.json() == {
        "type": "authentication_error",
        "code": "authentication_failed",
        "detail": "Invalid personal API key",
        "attr": None,
    }


@pytest.mark.parametrize("scopes", [["feature_flag:read"], ["feature_flag:write"], ["*"]])
def test_personal_keys_with_flag_read(client, project, make_api, scopes):
    assert get_definitions(client, project, make_api(scopes=scopes).secret).status_code == 200


def test_personal_key_refusals(client, project, user, make_api, other_project):
    cases = {
        "missing scope": make_api(scopes=["experiment:read"]).secret,
        "other project": make_api(scopes=["*"], scoped_teams=[other_project.id]).secret,
        "other organization": make_api(
            scopes=["*"], scoped_organizations=[str(other_project.organization_id)]
        ).secret,
        "not a member": keyed_client(UserFactory(), project).secret,
        "unknown": "phx_" + "x" * 43,
    }
    for case, secret in cases.items():
        response = get_definitions(client, project, secret)
        assert response.status_code == 401, case
        assert response.json()["type"] == "authentication_error", case
    user.is_active = False
    user.save()
    assert get_definitions(client, project, make_api(scopes=["*"]).secret).status_code == 401


def test_a_personal_key_poll_reads_one_statement_once_its_identity_is_held(
    client, project, api, django_assert_num_queries
):
    FeatureFlagFactory(project=project, key="alpha")
    etag = get_definitions(client, project, api.secret)["ETag"]
    with django_assert_num_queries(1):
        assert get_definitions(client, project, api.secret, **{"If-None-Match": etag}).status_code == 304
    assert PersonalAPIKey.objects.get(pk=api.key.pk).last_used_at is not None


def narrow_scopes(api):
    key = PersonalAPIKey.objects.get(pk=api.key.pk)
    key.scopes = ["experiment:read"]
    key.save()


def deactivate_user(api):
    api.user.is_active = False
    api.user.save()


@pytest.mark.parametrize(
    "revoke",
    [
        lambda api: PersonalAPIKey.objects.get(pk=api.key.pk).delete(),
        lambda api: personal_api_key_roll(key=PersonalAPIKey.objects.get(pk=api.key.pk)),
        deactivate_user,
        lambda api: OrganizationMembership.objects.filter(user=api.user).delete(),
        narrow_scopes,
    ],
    ids=["deleted", "rolled", "user deactivated", "membership removed", "scopes narrowed"],
)
def test_a_revoked_personal_key_is_refused_on_its_next_poll(client, project, api, revoke):
    etag = get_definitions(client, project, api.secret)["ETag"]
    assert get_definitions(client, project, api.secret, **{"If-None-Match": etag}).status_code == 304
    revoke(api)
    response = get_definitions(client, project, api.secret, **{"If-None-Match": etag})
    assert response.status_code == 401
    assert response.json()["type"] == "authentication_error"


def test_missing_credentials_and_tokens(client, project, api):
    response = get_definitions(client, project, None)
    assert response.status_code == 401
    assert response.json()["detail"] == "No personal API key provided"
    no_token = client.get("/flags/definitions", headers={"Authorization": f"Bearer {api.secret}"})
    assert no_token.status_code == 401
    wrong = client.get("/flags/definitions?token=phc_nope", headers={"Authorization": f"Bearer {api.secret}"})
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_api_key"
    assert client.post(f"/flags/definitions?token={project.api_token}").status_code == 405


def test_definitions_and_flags_agree(client, project, api):
    """The local definitions evaluate, in-process, to what `/flags` answers."""
    from flags.evaluation import EvaluationContext, evaluate_flags, person_properties_for

    FeatureFlagFactory(project=project, key="exp-flag")
    FeatureFlagFactory(
        project=project, key="rollout", filters={"groups": [{"properties": [], "rollout_percentage": 30}]}
    )
    definitions = get_definitions(client, project, api.secret).json()
    for number in range(50):
        did = f"user_{number}"
        remote = client.post(
            "/flags/?v=2",
            json.dumps({"api_key": project.api_token, "distinct_id": did}),
            content_type="application/json",
        ).json()["flags"]
        local = evaluate_flags(definitions["flags"], EvaluationContext(did, person_properties_for(did, {})))
        assert {key: (r["enabled"], r["variant"]) for key, r in remote.items()} == {
            key: (result.enabled, result.variant) for key, result in local.items()
        }


def test_stored_cohort_references_no_id_can_be_read_from_are_skipped(client, project, api):
    """Flag filters written before validation refused them (or by hand) may reference a cohort by
    text `int` cannot read: the definitions are served without such a cohort, not a 500."""
    cohort = CohortFactory(project=project)
    references = [cohort.id, "9" * 5000, "²", "99999999999999999999"]
    FeatureFlagFactory(
        project=project,
        key="odd-cohorts",
        filters={
            "groups": [
                {"properties": [{"key": "id", "type": "cohort", "value": value}], "rollout_percentage": 100}
                for value in references
            ]
        },
    )
    response = get_definitions(client, project, api.secret)
    assert response.status_code == 200, response.content
    assert list(response.json()["cohorts"]) == [str(cohort.id)]

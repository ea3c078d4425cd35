"""Remote-config flags over HTTP: `is_remote_configuration` and `has_encrypted_payloads` on the flags
API, encryption at rest, SDK delivery, and `GET …/feature_flags/{key}/remote_config`."""

import json

import pytest
from django.test import Client

from accounts.scoping import PROJECT_NOT_FOUND
from accounts.services import project_secret_api_key_rotate
from activity.models import ActivityLog
from flags.delivery import INVALID_SECRET_KEY, NO_SECRET_KEY, SECRET_KEY_WITHOUT_ACCESS
from flags.models import FeatureFlag
from flags.payload_encryption import REDACTED_PAYLOAD, decrypt_payload
from tests.conftest import keyed_client
from tests.factories import FeatureFlagFactory

pytestmark = pytest.mark.django_db

CONFIG = {"theme": "dark", "limits": [1, 2, 3]}
CONFIG_TEXT = json.dumps(CONFIG)


def create_remote_config(api, key="app-config", *, encrypted=False, payload=CONFIG, **extra):
    body = {
        "key": key,
        "is_remote_configuration": True,
        "has_encrypted_payloads": encrypted,
        "filters": {"groups": [{"properties": [], "rollout_percentage": 0}], "payloads": {"true": payload}},
        **extra,
    }
    response = api.post(api.url("feature_flags/"), body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def remote_config(secret, project, flag_ref, *, prefix="projects", project_ref="@current", token=None):
    token = project.api_token if token is None else token
    headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
    query = f"?token={token}" if token else ""
    return Client().get(
        f"/api/{prefix}/{project_ref}/feature_flags/{flag_ref}/remote_config{query}", headers=headers
    )


def definitions_keys(project, secret):
    response = Client().get(
        f"/flags/definitions?token={project.api_token}&send_cohorts",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 200
    return [flag["key"] for flag in response.json()["flags"]]


def remote_flag_keys(project):
    response = Client().post(
        "/flags/?v=2", {"token": project.api_token, "distinct_id": "user-1"}, content_type="application/json"
    )
    assert response.status_code == 200
    return sorted(response.json()["flags"])


# --- the flags API ----------------------------------------------------------------------------------


def test_create_shows_the_fields_and_rolls_a_remote_config_out_to_everyone(api):
    flag = create_remote_config(api)
    assert (flag["is_remote_configuration"], flag["has_encrypted_payloads"]) == (True, False)
    assert flag["filters"]["groups"] == [{"properties": [], "rollout_percentage": 100}]
    assert flag["filters"]["payloads"] == {"true": CONFIG_TEXT}
    stored = FeatureFlag.objects.get(pk=flag["id"])
    assert (stored.is_remote_configuration, stored.filters["payloads"]) == (True, {"true": CONFIG_TEXT})
    listed = api.get(api.url("feature_flags/")).json()["results"]
    assert [(item["key"], item["is_remote_configuration"]) for item in listed] == [("app-config", True)]


def test_a_remote_config_created_without_conditions_is_for_everyone(api):
    body = {"key": "defaults", "is_remote_configuration": True}
    response = api.post(api.url("feature_flags/"), body, format="json")
    assert response.status_code == 201
    assert response.json()["filters"]["groups"] == [{"properties": [], "rollout_percentage": 100}]


def test_an_ordinary_flag_keeps_its_conditions(api):
    response = api.post(api.url("feature_flags/"), {"key": "plain"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["is_remote_configuration"], body["has_encrypted_payloads"]) == (False, False)
    assert body["filters"]["groups"][0]["rollout_percentage"] == 0


def test_encrypted_payloads_are_stored_as_tokens_and_read_back_plain(api):
    flag = create_remote_config(api, encrypted=True)
    assert flag["filters"]["payloads"] == {"true": CONFIG_TEXT}
    stored = FeatureFlag.objects.get(pk=flag["id"])
    token = stored.filters["payloads"]["true"]
    assert CONFIG["theme"] not in token
    assert decrypt_payload(token) == CONFIG_TEXT
    assert api.get(api.url(f"feature_flags/{flag['id']}/")).json()["filters"]["payloads"] == {
        "true": CONFIG_TEXT
    }


def test_saving_an_encrypted_flag_unchanged_is_a_no_op(api):
    flag = create_remote_config(api, encrypted=True)
    token = FeatureFlag.objects.get(pk=flag["id"]).filters["payloads"]["true"]
    response = api.patch(api.url(f"feature_flags/{flag['id']}/"), {"filters": flag["filters"]}, format="json")
    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert FeatureFlag.objects.get(pk=flag["id"]).filters["payloads"]["true"] == token


def test_patching_an_encrypted_payload_encrypts_the_new_one(api):
    flag = create_remote_config(api, encrypted=True)
    response = api.patch(
        api.url(f"feature_flags/{flag['id']}/"),
        {"filters": {"payloads": {"true": {"theme": "light"}}}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["filters"]["payloads"] == {"true": '{"theme": "light"}'}
    stored = FeatureFlag.objects.get(pk=flag["id"])
    assert decrypt_payload(stored.filters["payloads"]["true"]) == '{"theme": "light"}'
    assert stored.filters["groups"] == [{"properties": [], "rollout_percentage": 100}]


def test_turning_encryption_on_and_off_rewrites_the_stored_payloads_and_logs_it(api):
    flag = create_remote_config(api)
    url = api.url(f"feature_flags/{flag['id']}/")
    on = api.patch(url, {"has_encrypted_payloads": True}, format="json")
    assert on.status_code == 200
    assert (on.json()["has_encrypted_payloads"], on.json()["filters"]["payloads"]) == (
        True,
        {"true": CONFIG_TEXT},
    )
    assert decrypt_payload(FeatureFlag.objects.get(pk=flag["id"]).filters["payloads"]["true"]) == CONFIG_TEXT
    off = api.patch(url, {"has_encrypted_payloads": False}, format="json")
    assert off.status_code == 200
    assert FeatureFlag.objects.get(pk=flag["id"]).filters["payloads"] == {"true": CONFIG_TEXT}
    changes = [
        {change["field"] for change in entry.detail["changes"]}
        for entry in ActivityLog.objects.filter(
            scope="FeatureFlag", item_id=str(flag["id"]), activity="updated"
        )
    ]
    assert sorted(map(sorted, changes)) == [["filters", "has_encrypted_payloads"]] * 2


def test_is_remote_configuration_can_be_patched_and_is_logged(api):
    response = api.post(api.url("feature_flags/"), {"key": "later"}, format="json")
    flag_id = response.json()["id"]
    patched = api.patch(
        api.url(f"feature_flags/{flag_id}/"), {"is_remote_configuration": True}, format="json"
    )
    assert patched.status_code == 200
    assert patched.json()["is_remote_configuration"] is True
    entry = ActivityLog.objects.get(scope="FeatureFlag", item_id=str(flag_id), activity="updated")
    assert entry.detail["changes"][0]["field"] == "is_remote_configuration"
    assert (entry.detail["changes"][0]["before"], entry.detail["changes"][0]["after"]) == (False, True)


def test_a_non_boolean_is_refused_and_changes_nothing(api):
    response = api.post(
        api.url("feature_flags/"), {"key": "bad", "is_remote_configuration": "maybe"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["attr"] == "is_remote_configuration"
    assert not FeatureFlag.objects.filter(key="bad").exists()


def test_an_unreadable_token_reads_as_the_redacted_placeholder(api, settings):
    flag = create_remote_config(api, encrypted=True)
    settings.FLAG_PAYLOAD_SECRETS = ["a-different-secret-than-the-one-that-wrote-it"]
    body = api.get(api.url(f"feature_flags/{flag['id']}/")).json()
    assert body["filters"]["payloads"] == {"true": REDACTED_PAYLOAD}


def test_rotated_secrets_still_open_old_tokens(api, settings):
    old_secret = settings.FLAG_PAYLOAD_SECRETS[0]
    flag = create_remote_config(api, encrypted=True)
    settings.FLAG_PAYLOAD_SECRETS = ["the-new-secret-for-flag-payloads-0123456789", old_secret]
    assert api.get(api.url(f"feature_flags/{flag['id']}/")).json()["filters"]["payloads"] == {
        "true": CONFIG_TEXT
    }


# --- SDK delivery -----------------------------------------------------------------------------------


def test_encrypted_remote_configs_stay_out_of_definitions_and_flags(api, project):
    create_remote_config(api, "plain-config")
    create_remote_config(api, "secret-config", encrypted=True)
    FeatureFlagFactory(project=project, key="encrypted-not-remote", has_encrypted_payloads=True)
    assert definitions_keys(project, api.secret) == ["encrypted-not-remote", "plain-config"]
    assert remote_flag_keys(project) == ["encrypted-not-remote", "plain-config"]


# --- GET …/remote_config ----------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["projects", "environments"])
def test_serves_the_config_as_a_json_string_by_key_or_id(api, project, prefix):
    flag = create_remote_config(api)
    for flag_ref in ("app-config", str(flag["id"])):
        for project_ref in ("@current", str(project.id)):
            response = remote_config(api.secret, project, flag_ref, prefix=prefix, project_ref=project_ref)
            assert response.status_code == 200
            assert response.json() == CONFIG_TEXT


def test_serves_an_encrypted_config_decrypted(api, project):
    create_remote_config(api, encrypted=True)
    response = remote_config(api.secret, project, "app-config")
    assert response.status_code == 200
    assert response.json() == CONFIG_TEXT


def test_a_project_secret_key_reads_it(api, project):
    create_remote_config(api, encrypted=True)
    secret = project_secret_api_key_rotate(project=project).secret
    response = remote_config(secret, project, "app-config")
    assert response.status_code == 200
    assert response.json() == CONFIG_TEXT


def test_a_config_without_payload_is_null(api, project):
    FeatureFlagFactory(project=project, key="empty", is_remote_configuration=True)
    response = remote_config(api.secret, project, "empty")
    assert response.status_code == 200
    assert response.content == b"null"


def test_missing_deleted_and_ordinary_flags_are_an_empty_404(api, project, other_project):
    FeatureFlagFactory(project=project, key="ordinary")
    FeatureFlagFactory(project=project, key="gone", is_remote_configuration=True, deleted=True)
    elsewhere = FeatureFlagFactory(project=other_project, key="elsewhere", is_remote_configuration=True)
    for flag_ref in ("missing", "ordinary", "gone", "elsewhere", str(elsewhere.id)):
        response = remote_config(api.secret, project, flag_ref)
        assert (response.status_code, response.content) == (404, b""), flag_ref


def test_secrets_that_may_not_read_the_project_are_401(api, project, user, other_project):
    create_remote_config(api)
    other_secret = project_secret_api_key_rotate(project=other_project).secret
    without_scope = keyed_client(user, project, scopes=["experiment:read"]).secret
    other_team = keyed_client(user, project, scoped_teams=[other_project.id]).secret
    cases = [
        (None, NO_SECRET_KEY),
        ("phx_not-a-key", INVALID_SECRET_KEY),
        (other_secret, INVALID_SECRET_KEY),
        (without_scope, SECRET_KEY_WITHOUT_ACCESS),
        (other_team, SECRET_KEY_WITHOUT_ACCESS),
    ]
    for secret, detail in cases:
        response = remote_config(secret, project, "app-config")
        assert response.status_code == 401, secret
        assert response.json()["detail"] == detail


def test_a_read_scope_is_enough(api, project, user):
    create_remote_config(api)
    reader = keyed_client(user, project, scopes=["feature_flag:read"]).secret
    assert remote_config(reader, project, "app-config").json() == CONFIG_TEXT


def test_an_unknown_token_or_project_is_refused(api, project):
    create_remote_config(api)
    assert remote_config(api.secret, project, "app-config", token="phc_unknown").status_code == 401
    assert remote_config(api.secret, project, "app-config", project_ref="999999999").status_code == 404
    assert remote_config(api.secret, project, "app-config", project_ref="abc").status_code == 404


def test_current_without_token_is_the_key_users_current_project(api, project, user):
    user.current_project = project
    user.save()
    create_remote_config(api)
    assert remote_config(api.secret, project, "app-config", token="").json() == CONFIG_TEXT


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_only_get_is_allowed(api, project, method):
    """Other methods are the view's 405, not the CSRF check's 403 (it reads no cookie or session)."""
    create_remote_config(api)
    response = Client(enforce_csrf_checks=True).generic(
        method,
        f"/api/projects/@current/feature_flags/app-config/remote_config?token={project.api_token}",
        headers={"Authorization": f"Bearer {api.secret}"},
    )
    assert response.status_code == 405, response.content
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("project_ref", "flag_ref", "token"),
    [
        ("@current", "%00key", None),
        ("@current", "k" * 5000, None),
        ("@current", "9" * 40, None),
        ("9" * 40, "app-config", None),
        ("@current", "app-config", "phc_%00"),
        ("@current", "app-config", "x" * 5000),
    ],
)
def test_hostile_references_are_refused_without_a_server_error(api, project, project_ref, flag_ref, token):
    create_remote_config(api)
    response = remote_config(api.key, project, flag_ref, project_ref=project_ref, token=token)
    assert response.status_code in (400, 401, 404), response.content


def documented_answers() -> dict:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/projects/{project_id}/feature_flags/{id}/remote_config/"]["get"]
    return operation["responses"]


def test_answers_are_those_the_schema_documents(api, project):
    create_remote_config(api)
    FeatureFlagFactory(project=project, key="ordinary")
    documented = documented_answers()
    answers = [
        remote_config(api.secret, project, "app-config"),
        remote_config(api.secret, project, "ordinary"),
        remote_config(api.secret, project, "app-config", project_ref="999999999"),
        remote_config("phx_not-a-key", project, "app-config"),
    ]
    assert [answer.status_code for answer in answers] == [200, 404, 404, 401]
    for answer in answers:
        media_type = answer["Content-Type"].split(";")[0]
        assert media_type in documented[str(answer.status_code)]["content"], (answer.status_code, media_type)
    assert isinstance(answers[0].json(), str)
    assert answers[1].content == b""
    assert set(answers[2].json()) == set(answers[3].json()) == {"type", "code", "detail", "attr"}


FULLWIDTH_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")


def test_flag_references_that_are_not_ascii_ids_are_keys(api, project):
    """A superscript digit passes `isdigit` and `int` refuses it; `int` reads fullwidth digits as
    the flag's id. Neither is an id here: each is looked up as a key, and no flag has it."""
    flag = create_remote_config(api)
    for flag_ref in ("²", "9" * 5000, str(flag["id"]).translate(FULLWIDTH_DIGITS)):
        response = remote_config(api.secret, project, flag_ref)
        assert (response.status_code, response.content) == (404, b""), flag_ref


def test_project_references_that_are_not_ascii_ids_name_no_project(api, project):
    create_remote_config(api)
    for project_ref in ("²", "9" * 5000, str(project.id).translate(FULLWIDTH_DIGITS)):
        response = remote_config(api.secret, project, "app-config", project_ref=project_ref)
        assert response.status_code == 404, project_ref
        assert response.json()["detail"] == PROJECT_NOT_FOUND

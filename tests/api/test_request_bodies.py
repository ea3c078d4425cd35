"""Bodies as clients send them (issue 11, item 4): forms where PostHog's docs show them, PUT as JSON
only, JSON without (or with the wrong) Content-Type told plainly, and chunked bodies read or 411."""

import http.client
import json
from io import BytesIO
from urllib.parse import urlencode, urlsplit

import pytest

from experiments.models import Experiment
from experiments_api.middleware import CHUNKED_BODY_NOT_READABLE
from experiments_api.negotiation import JSON_SENT_AS_FORM, JSON_WITHOUT_CONTENT_TYPE, PUT_TAKES_JSON
from flags.models import FeatureFlag
from tests.api.test_scale_out import server
from tests.factories import FeatureFlagFactory

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"


def test_a_form_creates_an_experiment(api):
    response = api.post(
        api.url("experiments/"),
        urlencode({"name": "Form", "feature_flag_key": "form-flag"}),
        content_type=FORM,
    )
    assert response.status_code == 201, response.json()
    assert Experiment.objects.get().name == "Form"


def test_a_multipart_form_creates_a_flag_and_a_boolean_left_out_keeps_its_default(api):
    response = api.post(api.url("feature_flags/"), {"key": "multipart", "name": "From a form"})
    assert response.status_code == 201, response.json()
    assert FeatureFlag.objects.get().active is True
    response = api.post(api.url("feature_flags/"), {"key": "off", "active": "false"})
    assert response.status_code == 201, response.json()
    assert FeatureFlag.objects.get(key="off").active is False


def test_a_form_patch_changes_only_what_it_sends(api):
    flag = FeatureFlagFactory(project=api.project, active=True)
    response = api.patch(
        api.url(f"feature_flags/{flag.id}/"), urlencode({"name": "Renamed"}), content_type=FORM
    )
    assert response.status_code == 200, response.json()
    flag.refresh_from_db()
    assert (flag.name, flag.active) == ("Renamed", True)


@pytest.mark.parametrize("content_type", [FORM, "multipart/form-data; boundary=BoUnDaRy"])
def test_a_form_put_is_refused_so_a_missing_boolean_cannot_switch_a_flag_off(api, content_type):
    flag = FeatureFlagFactory(project=api.project, active=True)
    body = urlencode({"key": flag.key}) if content_type == FORM else b"--BoUnDaRy--\r\n"
    response = api.put(api.url(f"feature_flags/{flag.id}/"), body, content_type=content_type)
    assert response.status_code == 415
    assert response.json()["detail"] == PUT_TAKES_JSON
    flag.refresh_from_db()
    assert flag.active is True


def test_the_schema_advertises_only_json_for_put(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operations = [
        op
        for path in schema["paths"].values()
        for method, op in path.items()
        if "requestBody" in op and method in ("put", "post")
    ]
    put_types = {
        media_type
        for path in schema["paths"].values()
        if "put" in path and "requestBody" in path["put"]
        for media_type in path["put"]["requestBody"]["content"]
    }
    assert put_types == {"application/json"}
    assert operations
    post = schema["paths"]["/api/projects/{project_id}/feature_flags/"]["post"]["requestBody"]["content"]
    assert FORM in post


def test_json_without_a_content_type_is_told_to_send_one(api):
    response = api.generic("POST", api.url("feature_flags/"), b'{"key": "no-type"}', content_type="")
    assert response.status_code == 400
    assert response.json()["detail"] == JSON_WITHOUT_CONTENT_TYPE
    assert not FeatureFlag.objects.exists()


def test_json_sent_as_a_form_like_curl_d_is_told_to_send_json(api):
    response = api.post(api.url("feature_flags/"), b' {"key": "curl-default"}', content_type=FORM)
    assert response.status_code == 400
    assert response.json()["detail"] == JSON_SENT_AS_FORM.format(media_type=FORM)
    assert not FeatureFlag.objects.exists()


def chunked_patch(api, path: str, body: bytes, **extra):
    """A chunked request as a WSGI server hands it over: no Content-Length, the de-chunked body."""
    return api.generic(
        "PATCH",
        path,
        body,
        content_type="application/json",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": BytesIO(body), **extra},
    )


def test_a_chunked_body_is_read_where_the_server_ends_it(api):
    flag = FeatureFlagFactory(project=api.project)
    response = chunked_patch(
        api, api.url(f"feature_flags/{flag.id}/"), b'{"name": "Chunked"}', **{"wsgi.input_terminated": True}
    )
    assert response.status_code == 200, response.json()
    flag.refresh_from_db()
    assert flag.name == "Chunked"


def test_a_chunked_body_the_server_cannot_end_is_a_411(api):
    flag = FeatureFlagFactory(project=api.project, name="Before")
    response = chunked_patch(api, api.url(f"feature_flags/{flag.id}/"), b'{"name": "Chunked"}')
    assert response.status_code == 411
    assert response.json()["detail"] == CHUNKED_BODY_NOT_READABLE
    flag.refresh_from_db()
    assert flag.name == "Before"


def test_a_chunked_body_over_the_limit_is_a_413(api, settings):
    settings.MAX_REQUEST_BODY_BYTES = 64
    flag = FeatureFlagFactory(project=api.project, name="Before")
    body = json.dumps({"name": "x" * 100}).encode()
    response = chunked_patch(
        api, api.url(f"feature_flags/{flag.id}/"), body, **{"wsgi.input_terminated": True}
    )
    assert response.status_code == 413
    flag.refresh_from_db()
    assert flag.name == "Before"


@pytest.mark.django_db(transaction=True)
def test_a_chunked_patch_through_gunicorn_writes(api):
    flag = FeatureFlagFactory(project=api.project)
    with server(None, "chunked") as base:
        address = urlsplit(base)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        connection.request(
            "PATCH",
            api.url(f"feature_flags/{flag.id}/"),
            body=iter([b'{"name": ', b'"Sent in chunks"}']),
            headers={"Authorization": f"Bearer {api.secret}", "Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 200, response.read()
    flag.refresh_from_db()
    assert flag.name == "Sent in chunks"

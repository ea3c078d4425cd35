"""Every error class comes back in the `{"type", "code", "detail", "attr"}` envelope."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.probe_urls")]


def probe(api, suffix: str = "") -> str:
    return f"/api/projects/{api.project.id}/probe/{suffix}"


def test_field_validation_error(api):
    response = api.post(probe(api), {"name": "far too long"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "type": "validation_error",
        "code": "max_length",
        "detail": "Ensure this field has no more than 5 characters.",
        "attr": "name",
    }


def test_required_field_error(api):
    response = api.post(probe(api), {}, format="json")
    assert response.json() == {
        "type": "validation_error",
        "code": "required",
        "detail": "This field is required.",
        "attr": "name",
    }


def test_nested_field_error_path_is_joined_with_double_underscores(api):
    response = api.post(probe(api), {"name": "ok", "items": [{"key": "a"}, {}]}, format="json")
    assert response.status_code == 400
    assert response.json()["attr"] == "items__1__key"
    assert response.json()["code"] == "required"


def test_non_field_error_has_null_attr_and_invalid_input_code(api):
    response = api.post(probe(api), {"name": "whole"}, format="json")
    assert response.json() == {
        "type": "validation_error",
        "code": "invalid_input",
        "detail": "The whole payload is wrong.",
        "attr": None,
    }


def test_malformed_json_is_400_parse_error(api):
    response = api.generic("POST", probe(api), "{not json", content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "invalid_request"
    assert body["code"] == "parse_error"
    assert body["detail"].startswith("JSON parse error")
    assert body["attr"] is None


def test_unsupported_media_type_is_415(api):
    response = api.generic("POST", probe(api), "name=ok", content_type="text/plain")
    assert response.status_code == 415
    assert response.json() == {
        "type": "invalid_request",
        "code": "unsupported_media_type",
        "detail": 'Unsupported media type "text/plain" in request.',
        "attr": None,
    }


def test_method_not_allowed_is_405(api):
    response = api.delete(f"/api/projects/{api.project.id}/")
    assert response.status_code == 405
    assert response.json() == {
        "type": "invalid_request",
        "code": "method_not_allowed",
        "detail": 'Method "DELETE" not allowed.',
        "attr": None,
    }


def test_unknown_api_path_is_404_endpoint_not_found(api):
    response = api.get("/api/does-not-exist/")
    assert response.status_code == 404
    assert response.json() == {
        "type": "invalid_request",
        "code": "not_found",
        "detail": "Endpoint not found.",
        "attr": None,
    }


@override_settings(MAX_REQUEST_BODY_BYTES=64)
def test_oversized_body_is_413_before_parsing(api):
    response = api.post(probe(api), {"name": "x" * 200}, format="json")
    assert response.status_code == 413
    assert response.json() == {
        "type": "invalid_request",
        "code": "request_too_large",
        "detail": "Request body is too large: the limit is 64 bytes.",
        "attr": None,
    }


def test_unexpected_exception_is_500_in_the_envelope_with_request_id(api, caplog):
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api.secret}")
    response = client.get(probe(api, "boom/"), HTTP_X_REQUEST_ID="req-123")
    assert response.status_code == 500
    assert response.json() == {
        "type": "server_error",
        "code": "error",
        "detail": "A server error occurred.",
        "attr": None,
    }
    assert response["X-Request-ID"] == "req-123"
    assert "request_id=req-123" in caplog.text


def test_every_response_carries_a_request_id(api):
    response = api.get(probe(api))
    assert len(response["X-Request-ID"]) == 32

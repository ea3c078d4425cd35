"""Calls answered before the browser-session middleware (experiments_api.middleware.EarlyAnswerMiddleware):
they still carry what the rest of the stack adds to every answer, and the calls the middleware
skipped for them still go through it."""

import json
from io import BytesIO
from unittest import mock

import pytest
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.test import Client, override_settings

from accounts.scoping import PROJECT_NOT_FOUND
from experiments_api.response_cache import process_response_cache
from tests.api.early_answer_urls import NOT_EXEMPT_PATH
from tests.experiments.helpers import create_experiment
from tests.factories import FeatureFlagFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_response_cache():
    process_response_cache.clear()
    yield
    process_response_cache.clear()


def skipping_authentication_middleware():
    return mock.patch.object(
        AuthenticationMiddleware, "process_request", side_effect=AssertionError("went through the stack")
    )


def assert_stack_headers(response):
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Request-ID"]
    assert int(response["Content-Length"]) == len(response.content)


def flags_body(project, **fields) -> str:
    return json.dumps({"api_key": project.api_token, "distinct_id": "user-1", **fields})


def test_cached_reads_and_me_are_answered_early_with_the_stack_headers(api):
    experiment = create_experiment(api, name="Early")
    url = api.url(f"experiments/{experiment['id']}/")
    built = api.get(url)
    assert built.status_code == 200
    with skipping_authentication_middleware():
        cached = api.get(url)
        me = api.get("/api/users/@me/")
    assert cached.status_code == 200 and cached.content == built.content
    assert me.status_code == 200 and me.json()["email"] == api.user.email
    for response in (built, cached, me):
        assert_stack_headers(response)


def test_a_cache_miss_goes_through_the_stack_once(api):
    experiment = create_experiment(api, name="Missed")
    with mock.patch.object(
        AuthenticationMiddleware, "process_request", autospec=True, return_value=None
    ) as through_stack:
        response = api.get(api.url(f"experiments/{experiment['id']}/"))
    assert response.status_code == 200 and response.json()["name"] == "Missed"
    assert through_stack.call_count == 1
    assert_stack_headers(response)


def test_sdk_calls_are_answered_early_with_the_stack_headers(api):
    FeatureFlagFactory(project=api.project, key="early-flag")
    client = Client()
    with skipping_authentication_middleware():
        flags = client.post("/flags/?v=2", flags_body(api.project), content_type="application/json")
        definitions = client.get(
            f"/flags/definitions?token={api.project.api_token}",
            headers={"Authorization": f"Bearer {api.secret}"},
        )
    assert flags.status_code == 200 and "early-flag" in flags.json()["flags"]
    assert definitions.status_code == 200
    for response in (flags, definitions):
        assert_stack_headers(response)


def test_an_early_sdk_call_keeps_its_body_limit(api, settings):
    settings.MAX_REQUEST_BODY_BYTES = 64
    with skipping_authentication_middleware():
        response = Client().post(
            "/flags/?v=2", flags_body(api.project, padding="x" * 100), content_type="application/json"
        )
    assert response.status_code == 413


def test_an_early_sdk_call_reads_a_chunked_body_once(api):
    FeatureFlagFactory(project=api.project, key="chunked-flag")
    body = flags_body(api.project).encode()
    with skipping_authentication_middleware():
        response = Client().generic(
            "POST",
            "/flags/?v=2",
            body,
            content_type="application/json",
            CONTENT_LENGTH="",
            HTTP_TRANSFER_ENCODING="chunked",
            **{"wsgi.input": BytesIO(body), "wsgi.input_terminated": True},
        )
    assert response.status_code == 200, response.content
    assert "chunked-flag" in response.json()["flags"]


@override_settings(ROOT_URLCONF="tests.api.early_answer_urls")
def test_an_unsafe_method_to_a_view_not_exempt_from_csrf_goes_through_the_stack():
    client = Client(enforce_csrf_checks=True)
    with skipping_authentication_middleware():
        early = client.get(f"/{NOT_EXEMPT_PATH}")
    assert (early.status_code, early.content) == (200, b"GET")
    refused = client.post(f"/{NOT_EXEMPT_PATH}")
    assert refused.status_code == 403
    assert b"CSRF" in refused.content


@pytest.mark.parametrize("path", ["/flags/definitions", "/api/feature_flag/local_evaluation/"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_the_definitions_answer_other_methods_405_not_a_csrf_refusal(api, path, method):
    client = Client(enforce_csrf_checks=True)
    response = client.generic(
        method, f"{path}?token={api.project.api_token}", headers={"Authorization": f"Bearer {api.secret}"}
    )
    assert response.status_code == 405, response.content
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize("project_ref", ["9" * 5000, "²", "fullwidth"])
def test_project_ids_that_are_not_ascii_bigints_are_not_found_early_or_late(api, project_ref):
    """`int` refuses a superscript digit (which `isdigit` accepts) and more than 4 300 digits, and
    reads fullwidth digits as the id they mimic: none of them names a project, on either path."""
    if project_ref == "fullwidth":
        project_ref = str(api.project.id).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    for method in ("get", "post"):
        for prefix in ("projects", "environments"):
            response = getattr(api, method)(f"/api/{prefix}/{project_ref}/experiments/", {}, format="json")
            assert response.status_code == 404, (method, prefix, response.content)
            assert response.json()["detail"] == PROJECT_NOT_FOUND

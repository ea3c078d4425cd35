import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "PersonalAPIKeyAuth" in out.read_text()


def test_schema_and_docs_are_served(db):
    client = APIClient()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    document = schema.json()
    assert document["components"]["securitySchemes"]["PersonalAPIKeyAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }
    project_get = document["paths"]["/api/projects/{id}/"]["get"]
    assert project_get["operationId"] == "projects_retrieve"
    assert project_get["security"] == [{"PersonalAPIKeyAuth": ["project:read"]}]
    assert client.get("/api/schema/swagger-ui/").status_code == 200
    assert client.get("/api/schema/redoc/").status_code == 200


def test_liveness_touches_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = APIClient().get("/_liveness")
    assert response.status_code == 200
    assert response.content == b"ok"


def test_health_checks_the_database(db):
    response = APIClient().get("/_health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "local"}


def test_user_references_that_outlive_their_user_are_nullable_in_the_schema(db):
    document = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    references = {
        (name, field): definition.get("nullable", False)
        for name, component in document["components"]["schemas"].items()
        for field, definition in component.get("properties", {}).items()
        if "#/components/schemas/UserBasic" in str(definition)
    }
    # A vote is deleted with its user; every other creator link is set to null when the user goes.
    assert references.pop(("ApprovalVote", "created_by")) is False
    assert references and all(references.values()), references


def test_every_operation_documents_its_error_answers(db):
    document = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operations = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    for path, method, operation in operations:
        responses = operation["responses"]
        for status in ("401", "403", "404", "413", "415", "429"):
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }, (path, method, status)
        assert "text/html" in responses["414"]["content"], (path, method)
    launch = document["paths"]["/api/projects/{project_id}/experiments/{id}/launch/"]["post"]["responses"]
    assert launch["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApprovalRequired"
    }
    assert "409" not in document["paths"]["/api/projects/{project_id}/experiments/"]["get"]["responses"]


def test_remote_config_is_documented_as_posthog_documents_it(db):
    """A plain Django view drf-spectacular cannot see, added by `flags.schema`: path, operation id,
    path parameters, tag and scope as in PostHog's published document."""
    document = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operations = document["paths"]["/api/projects/{project_id}/feature_flags/{id}/remote_config/"]
    assert list(operations) == ["get"]
    operation = operations["get"]
    assert operation["operationId"] == "feature_flags_remote_config_retrieve"
    assert operation["tags"] == ["feature_flags"]
    assert operation["security"] == [{"PersonalAPIKeyAuth": ["feature_flag:read"]}]
    parameters = {(parameter["in"], parameter["name"]): parameter for parameter in operation["parameters"]}
    assert sorted(parameters) == [("path", "id"), ("path", "project_id"), ("query", "token")]
    assert (parameters["path", "id"]["schema"], parameters["path", "id"]["required"]) == (
        {"type": "integer"},
        True,
    )
    assert parameters["path", "project_id"]["schema"]["type"] == "string"
    assert parameters["query", "token"]["required"] is False
    responses = operation["responses"]
    assert responses["200"]["content"] == {
        "application/json": {"schema": {"type": "string", "nullable": True}}
    }
    assert set(responses["404"]["content"]) == {"application/json", "text/html"}
    assert responses["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    paths = list(document["paths"])
    assert paths.index("/api/projects/{project_id}/feature_flags/{id}/remote_config/") == (
        paths.index("/api/projects/{project_id}/feature_flags/{id}/activity/") + 1
    )

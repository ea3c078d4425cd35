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
    assert response.json() == {"status": "ok", "database": "ok"}

"""With the database unreachable the server answers 503 (with Retry-After) in the API's error
format, never 500; readiness fails while liveness still answers.

The outage is real: a fresh interpreter whose DATABASE_URL points at a port nothing listens on."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from experiments_api.errors import DATABASE_UNAVAILABLE_DETAIL

ROOT = Path(__file__).resolve().parents[2]

OUTAGE_SCRIPT = """
import json
import django

django.setup()
from django.test import Client

client = Client()
bearer = {"HTTP_AUTHORIZATION": "Bearer phx_" + "a" * 43}
answers = {
    "api": client.get("/api/projects/1/experiments/", **bearer),
    "me": client.get("/api/users/@me/", **bearer),
    "flags": client.post("/flags/?v=2", json.dumps({"api_key": "phc_x", "distinct_id": "u"}),
                         content_type="application/json"),
    "definitions": client.get("/api/feature_flag/local_evaluation/?token=phc_x", **bearer),
    "health": client.get("/_health"),
    "ready": client.get("/_ready"),
    "liveness": client.get("/_liveness"),
}
print(json.dumps({
    name: {
        "status": response.status_code,
        "retry_after": response.get("Retry-After"),
        "body": response.content.decode(),
    }
    for name, response in answers.items()
}))
"""


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def outage_answers() -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port()}/unreachable",
        "REDIS_URL": "",
        "LOG_LEVEL": "CRITICAL",
    }
    result = subprocess.run(
        [sys.executable, "-c", OUTAGE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("endpoint", ["api", "me", "flags", "definitions"])
def test_requests_answer_503_in_the_error_format(outage_answers, endpoint):
    answer = outage_answers[endpoint]
    assert answer["status"] == 503, answer
    assert answer["retry_after"] == "5"
    assert json.loads(answer["body"]) == {
        "type": "server_error",
        "code": "service_unavailable",
        "detail": DATABASE_UNAVAILABLE_DETAIL,
        "attr": None,
    }


@pytest.mark.parametrize("endpoint", ["health", "ready"])
def test_health_and_readiness_fail(outage_answers, endpoint):
    answer = outage_answers[endpoint]
    assert answer["status"] == 503
    assert json.loads(answer["body"]) == {"status": "error", "database": "unreachable", "cache": "local"}


def test_liveness_still_answers(outage_answers):
    assert outage_answers["liveness"]["status"] == 200


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/_ready", "/_health"])
def test_readiness_with_the_database_up(path):
    response = APIClient().get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "local"}

"""Event intake: `/batch/`, `/capture/`, `/e/`, `/i/v0/e/`."""

import base64
import datetime as dt
import gzip
import json
import uuid
import zlib

import pytest
from django.test import Client

from accounts.models import FlagDefinitionsVersion
from events.models import Event, GroupTypeMapping

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    return Client()


def flag_called(distinct_id="user_1", **extra):
    return {
        "event": "$feature_flag_called",
        "distinct_id": distinct_id,
        "timestamp": "2026-01-02T03:04:05+00:00",
        "uuid": str(uuid.uuid4()),
        "properties": {
            "$feature_flag": "exp-flag",
            "$feature_flag_response": "test",
            "$lib": "posthog-python",
        },
        **extra,
    }


def post(client, body, path="/batch/", content_type="application/json", **headers):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.generic("POST", path, data, content_type=content_type, headers=headers)


def test_python_sdk_batch_is_stored(client, project):
    events = [flag_called("user_1"), flag_called("user_2")]
    body = {"batch": events, "historical_migration": False, "sent_at": "2026-01-02T03:04:05+00:00"}
    response = post(client, {**body, "api_key": project.api_token})
    assert response.status_code == 200
    assert response.json() == {"status": 1}
    stored = {event.distinct_id: event for event in Event.objects.filter(project=project)}
    assert set(stored) == {"user_1", "user_2"}
    first = stored["user_1"]
    assert str(first.uuid) == events[0]["uuid"]
    assert first.event == "$feature_flag_called"
    assert first.properties["$feature_flag_response"] == "test"
    # sent_at equals the event time, so the event is placed at the server's receive time.
    assert abs((first.timestamp - first.received_at).total_seconds()) < 5


def test_timestamp_without_sent_at_is_kept(client, project):
    post(client, {"api_key": project.api_token, "batch": [flag_called()]})
    assert Event.objects.get().timestamp == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_resent_batch_is_not_stored_twice(client, project):
    body = {"api_key": project.api_token, "batch": [flag_called()]}
    post(client, body)
    assert post(client, body).status_code == 200
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    "path", ["/batch", "/batch/", "/capture/", "/capture", "/e/", "/e", "/i/v0/e/", "/i/v0/e"]
)
def test_every_capture_path(client, project, path):
    assert (
        post(client, {"api_key": project.api_token, "batch": [flag_called()]}, path=path).status_code == 200
    )
    assert Event.objects.filter(project=project).count() == 1


def test_gzip_and_deflate(client, project):
    raw = json.dumps({"api_key": project.api_token, "batch": [flag_called("gz")]}).encode()
    assert post(client, gzip.compress(raw), **{"Content-Encoding": "gzip"}).status_code == 200
    raw = json.dumps({"api_key": project.api_token, "batch": [flag_called("zlib")]}).encode()
    assert post(client, zlib.compress(raw), **{"Content-Encoding": "deflate"}).status_code == 200
    raw = json.dumps([{**flag_called("js"), "properties": {"token": project.api_token}}]).encode()
    assert (
        post(
            client, gzip.compress(raw), path="/e/?compression=gzip-js", content_type="text/plain"
        ).status_code
        == 200
    )
    assert set(Event.objects.values_list("distinct_id", flat=True)) == {"gz", "zlib", "js"}


def test_single_event_and_form_encoded(client, project):
    single = {**flag_called("single"), "api_key": project.api_token}
    assert post(client, single, path="/capture/").status_code == 200
    data = base64.b64encode(json.dumps({**flag_called("form"), "token": project.api_token}).encode()).decode()
    response = post(client, f"data={data}", path="/e/", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert set(Event.objects.values_list("distinct_id", flat=True)) == {"single", "form"}


def test_token_from_event_properties_and_numeric_distinct_id(client, project):
    event = {"event": "pageview", "distinct_id": 42, "properties": {"token": project.api_token}}
    assert post(client, [event], path="/e/").status_code == 200
    assert Event.objects.get().distinct_id == "42"


def test_group_types_are_discovered(client, project, django_capture_on_commit_callbacks):
    events = [
        flag_called(properties={"$groups": {"company": "acme"}}),
        flag_called(properties={"$groups": {"company": "globex", "team": "t1"}}),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        post(client, {"api_key": project.api_token, "batch": events})
    mapping = dict(
        GroupTypeMapping.objects.filter(project=project).values_list("group_type", "group_type_index")
    )
    assert mapping == {"company": 0, "team": 1}
    assert FlagDefinitionsVersion.objects.get(project=project).version >= 1


def test_no_more_than_five_group_types(client, project):
    groups = {f"type{index}": "x" for index in range(7)}
    post(client, {"api_key": project.api_token, "batch": [flag_called(properties={"$groups": groups})]})
    assert GroupTypeMapping.objects.filter(project=project).count() == 5


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({"batch": "x"}, "batch"),
        ({"batch": [{"distinct_id": "u"}]}, "batch__0__event"),
        ({"batch": [{"event": "e"}]}, "batch__0__distinct_id"),
        ({"batch": [{"event": "e", "distinct_id": True}]}, "batch__0__distinct_id"),
        ({"batch": [{"event": "e", "distinct_id": "u", "properties": []}]}, "batch__0__properties"),
        ({"batch": [{"event": "e", "distinct_id": "u", "uuid": "nope"}]}, "batch__0__uuid"),
        ({"batch": [{"event": "ok", "distinct_id": "u"}, "text"]}, "batch__1"),
        ({"event": "", "distinct_id": "u"}, "event"),
    ],
)
def test_malformed_events_are_400_and_nothing_is_stored(client, project, body, attr):
    response = post(client, {**body, "api_key": project.api_token})
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert response.json()["attr"] == attr
    assert not Event.objects.exists()


@pytest.mark.parametrize("raw", [b"{nope", b"", b"\x1f\x8b broken gzip", b"data="])
def test_undecodable_bodies_are_400(client, project, raw):
    response = post(client, raw)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_payload"


def test_token_errors(client, project):
    missing = post(client, {"batch": [flag_called()]})
    assert missing.status_code == 401
    assert missing.json()["code"] == "missing_api_key"
    unknown = post(client, {"api_key": "phc_nope", "batch": [flag_called()]})
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "invalid_api_key"


def test_event_bodies_have_their_own_limit(client, project, settings):
    settings.MAX_REQUEST_BODY_BYTES = 200
    settings.MAX_EVENT_BODY_BYTES = 100_000
    body = {"api_key": project.api_token, "batch": [flag_called(f"user_{n}") for n in range(20)]}
    assert post(client, body).status_code == 200
    settings.MAX_EVENT_BODY_BYTES = 300
    too_big = post(client, body)
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "request_too_large"


def test_gzip_bomb_is_refused(client, project, settings):
    settings.MAX_EVENT_BODY_BYTES = 10_000
    bomb = gzip.compress(b"[" + b" " * 1_000_000 + b"]")
    assert len(bomb) < 10_000
    response = post(client, bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413


def test_methods(client):
    assert client.options("/batch/").status_code == 204
    assert client.get("/batch/").status_code == 405


def test_events_are_append_only(client, project):
    post(client, {"api_key": project.api_token, "batch": [flag_called()]})
    event = Event.objects.get()
    event.event = "changed"
    with pytest.raises(ValueError, match="append-only"):
        event.save()


def test_deeply_nested_properties_never_500(client, project):
    for depth in (500, 900, 5000):
        nested = "[" * depth + "]" * depth
        raw = (
            f'{{"api_key": "{project.api_token}", "batch": [{{"event": "e", "distinct_id": "u", '
            f'"properties": {{"deep": {nested}}}}}]}}'
        )
        assert post(client, raw).status_code in (200, 400), depth


def test_default_body_limit_refuses_a_15_mb_batch(client, project):
    body = (
        b'{"api_key": "' + project.api_token.encode() + b'", "batch": [' + b" " * (15 * 1024 * 1024) + b"]}"
    )
    response = post(client, body)
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert not Event.objects.exists()


def test_intake_is_rate_limited_per_client_address(client, project, settings):
    settings.EVENT_INTAKE_RATE = "3/minute"
    body = {"api_key": project.api_token, "batch": [flag_called()]}
    assert [post(client, body).status_code for _ in range(3)] == [200, 200, 200]
    refused = post(client, body)
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Another address has its own allowance; a forged X-Forwarded-For does not make one.
    assert post(client, body, **{"X-Forwarded-For": "203.0.113.9"}).status_code == 429
    other = Client(REMOTE_ADDR="198.51.100.7")
    assert post(other, body).status_code == 200


def test_intake_limit_counts_the_address_named_by_the_trusted_proxy(client, project, settings):
    settings.EVENT_INTAKE_RATE = "1/minute"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    body = {"api_key": project.api_token, "batch": [flag_called()]}
    assert post(client, body, **{"X-Forwarded-For": "203.0.113.9"}).status_code == 200
    assert post(client, body, **{"X-Forwarded-For": "203.0.113.9"}).status_code == 429
    assert post(client, body, **{"X-Forwarded-For": "203.0.113.10"}).status_code == 200

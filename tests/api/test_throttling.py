import pytest
from django.test import override_settings
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

THROTTLED_PREFIX = "Request was throttled. Expected available in"


@override_settings(THROTTLE_BURST_RATE="5/minute")
def test_burst_limit_is_per_key(api, make_api):
    url = f"/api/projects/{api.project.id}/"
    for _ in range(5):
        assert api.get(url).status_code == 200
    response = api.get(url)
    assert response.status_code == 429
    body = response.json()
    assert body["type"] == "throttled_error"
    assert body["code"] == "throttled"
    assert body["detail"].startswith(THROTTLED_PREFIX)
    assert body["attr"] is None
    assert int(response["Retry-After"]) > 0

    assert make_api().get(url).status_code == 200


@override_settings(THROTTLE_SUSTAINED_RATE="3/hour")
def test_sustained_limit(api):
    url = f"/api/projects/{api.project.id}/"
    statuses = [api.get(url).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


@override_settings(THROTTLE_BURST_RATE="2/minute")
def test_session_requests_are_not_throttled(user, project):
    client = APIClient()
    client.force_login(user)
    statuses = {client.get(f"/api/projects/{project.id}/").status_code for _ in range(5)}
    assert statuses == {200}


@override_settings(THROTTLE_BURST_RATE="2/minute", RATE_LIMIT_ENABLED=False)
def test_rate_limiting_can_be_disabled(api):
    statuses = {api.get(f"/api/projects/{api.project.id}/").status_code for _ in range(5)}
    assert statuses == {200}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@override_settings(THROTTLE_BURST_RATE="5/minute")
def test_a_window_edge_gives_no_second_burst_and_refusals_are_not_counted(api, monkeypatch):
    clock = Clock(1_800_000_000 * 60 + 59.5)  # half a second before a window ends
    monkeypatch.setattr("accounts.throttling.time", clock)
    url = f"/api/projects/{api.project.id}/"
    assert [api.get(url).status_code for _ in range(5)] == [200] * 5

    clock.now += 1  # the next window: the last minute still holds ~5 requests
    assert [api.get(url).status_code for _ in range(3)] == [429] * 3

    clock.now += 30  # half the previous window has slid out: ~2.5 of its 5 still count
    assert [api.get(url).status_code for _ in range(3)] == [200, 200, 429]

    clock.now += 60  # a full period later only the two requests of the last window count, half
    assert [api.get(url).status_code for _ in range(5)] == [200, 200, 200, 200, 429]

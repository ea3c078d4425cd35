"""Server processes behind a load balancer: per-key rate limits shared through Redis, and a Redis
outage that degrades the service instead of taking it down."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from accounts.models import OrganizationMembership
from accounts.services import personal_api_key_roll, project_secret_api_key_rotate
from tests.conftest import KeyedClient
from tests.factories import FeatureFlagFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """REDIS_URL if set, else a local Redis on 6379, else a throwaway redis-server."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    if reachable("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/15"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "This test needs Redis: set REDIS_URL, run one on 127.0.0.1:6379, or install redis-server."
        )
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while not reachable("127.0.0.1", port):
                if time.monotonic() > deadline:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def database_url() -> str:
    settings = connection.settings_dict
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{settings['USER']}{password}@{host}:{port}/{settings['NAME']}"


@contextmanager
def server(redis: str | None, prefix: str) -> Iterator[str]:
    """A gunicorn process (one worker) on the test database, with a burst limit of 5 per minute."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_ACCESS_LOG": "",
        "THROTTLE_BURST_RATE": "5/minute",
        "CACHE_KEY_PREFIX": prefix,
    }
    env.pop("REDIS_URL", None)
    if redis:
        env["REDIS_URL"] = redis
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "experiments_api.wsgi:application", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/_liveness", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("gunicorn did not start")
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def status(base: str, api: KeyedClient) -> int:
    request = urllib.request.Request(
        f"{base}/api/projects/{api.project.id}/", headers={"Authorization": f"Bearer {api.secret}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def alternate(first: str, second: str, api: KeyedClient, count: int) -> list[int]:
    return [status(first if index % 2 == 0 else second, api) for index in range(count)]


def test_rate_limit_is_shared_between_processes_with_redis(api, redis_url):
    prefix = f"test-{uuid.uuid4().hex}"
    with server(redis_url, prefix) as first, server(redis_url, prefix) as second:
        assert alternate(first, second, api, 7) == [200, 200, 200, 200, 200, 429, 429]


def test_without_redis_each_process_counts_alone(api):
    prefix = f"test-{uuid.uuid4().hex}"
    with server(None, prefix) as first, server(None, prefix) as second:
        assert alternate(first, second, api, 8) == [200] * 8


def answer(
    base: str, path: str, *, headers: dict | None = None, body: dict | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_redis_outage_degrades_the_service_instead_of_stopping_it(api):
    FeatureFlagFactory(project=api.project, key="exp-flag")
    project_secret = project_secret_api_key_rotate(project=api.project).secret
    closed_port = free_port()  # nothing listens there: every Redis call is refused
    with server(f"redis://127.0.0.1:{closed_port}/0", f"test-{uuid.uuid4().hex}") as base:
        started = time.monotonic()
        statuses = alternate(base, base, api, 3)
        flags_status, flags = answer(
            base, "/flags/?v=2", body={"api_key": api.project.api_token, "distinct_id": "user_1"}
        )
        definitions_status, _ = answer(
            base,
            f"/flags/definitions?token={api.project.api_token}",
            headers={"Authorization": f"Bearer {project_secret}"},
        )
        health_status, health = answer(base, "/_health")
        elapsed = time.monotonic() - started

    assert statuses == [200, 200, 200]
    assert flags_status == 200
    assert json.loads(flags)["flags"]["exp-flag"]["enabled"] is True
    assert definitions_status == 200
    assert health_status == 200
    assert json.loads(health) == {"status": "degraded", "database": "ok", "cache": "degraded"}
    assert elapsed < 10


def test_a_write_on_one_process_is_read_fresh_on_another(api):
    flag = FeatureFlagFactory(project=api.project, key="exp-flag", name="Before")
    auth = {"Authorization": f"Bearer {api.secret}"}
    path = f"/api/projects/{api.project.id}/feature_flags/{flag.id}/"
    sdk_body = {"api_key": api.project.api_token, "distinct_id": "user_1"}
    with (
        server(None, f"test-{uuid.uuid4().hex}") as first,
        server(None, f"test-{uuid.uuid4().hex}") as second,
    ):
        for base in (first, second):  # both processes cache the answer and the definitions
            assert json.loads(answer(base, path, headers=auth)[1])["name"] == "Before"
            assert json.loads(answer(base, "/flags/?v=2", body=sdk_body)[1])["flags"]["exp-flag"]["enabled"]

        request = urllib.request.Request(
            first + path,
            data=json.dumps({"name": "After", "active": False}).encode(),
            method="PATCH",
            headers={**auth, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

        assert json.loads(answer(second, path, headers=auth)[1])["name"] == "After"
        assert not json.loads(answer(second, "/flags/?v=2", body=sdk_body)[1])["flags"]["exp-flag"]["enabled"]


def test_a_revoked_key_is_refused_by_every_process_on_its_next_request(api, make_api):
    doomed = make_api()
    with (
        server(None, f"test-{uuid.uuid4().hex}") as first,
        server(None, f"test-{uuid.uuid4().hex}") as second,
    ):
        assert [status(first, doomed), status(second, doomed)] == [200, 200]
        doomed.key.delete()  # revoked while both processes hold warm connections and caches
        assert [status(second, doomed), status(first, doomed)] == [401, 401]
        assert [status(second, api), status(first, api)] == [200, 200]


def test_a_rolled_key_a_deactivated_user_and_a_removed_membership_reach_every_process(api, make_api):
    rolled, deactivated, removed = (
        make_api(),
        make_api(for_user=UserFactory()),
        make_api(for_user=UserFactory()),
    )
    for client in (deactivated, removed):
        MembershipFactory(organization=api.project.organization, user=client.user)
    with (
        server(None, f"test-{uuid.uuid4().hex}") as first,
        server(None, f"test-{uuid.uuid4().hex}") as second,
    ):
        for client in (rolled, deactivated, removed):  # both processes now hold each identity
            assert [status(first, client), status(second, client)] == [200, 200]

        personal_api_key_roll(key=rolled.key)
        deactivated.user.is_active = False
        deactivated.user.save()
        OrganizationMembership.objects.filter(user=removed.user).delete()

        assert [status(second, rolled), status(first, rolled)] == [401, 401]
        assert [status(second, deactivated), status(first, deactivated)] == [401, 401]
        assert [status(second, removed), status(first, removed)] == [404, 404]
        assert [status(second, api), status(first, api)] == [200, 200]

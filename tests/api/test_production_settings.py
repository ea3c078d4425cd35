"""The settings' defaults are the production ones; a demo's conveniences must be asked for.

Each case starts a fresh interpreter with a controlled environment, since settings are read once
per process."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from experiments_api.settings import DEVELOPMENT_SECRET_KEY, PUBLISHED_SECRET_KEYS

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENVIRONMENT_NAMES_TO_DROP = (
    "DEBUG",
    "SECRET_KEY",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "ALLOWED_HOSTS",
    "DJANGO_SETTINGS_MODULE",
)


def operator_environment(**values: str) -> dict[str, str]:
    """What an operator's shell would pass: nothing of the test suite's own settings."""
    env = {
        name: value for name, value in os.environ.items() if name not in PRODUCTION_ENVIRONMENT_NAMES_TO_DROP
    }
    env["DJANGO_SETTINGS_MODULE"] = "experiments_api.settings"
    env.update(values)
    return env


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def read_setting(env: dict[str, str], expression: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"from django.conf import settings; print({expression})"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def a_real_secret() -> str:
    return secrets.token_urlsafe(50)


def test_debug_is_off_unless_asked_for():
    result = read_setting(operator_environment(SECRET_KEY=a_real_secret()), "settings.DEBUG")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def start_the_application(env: dict[str, str]) -> subprocess.CompletedProcess:
    """What gunicorn does first: import the WSGI application."""
    return subprocess.run(
        [sys.executable, "-c", "import experiments_api.wsgi; print('serving')"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_secret_key_refuses_to_start():
    started = start_the_application(operator_environment())
    assert started.returncode != 0
    assert "ImproperlyConfigured" in started.stderr
    assert "SECRET_KEY" in started.stderr
    checked = run_manage(operator_environment(), "check", "--deploy")
    assert checked.returncode != 0
    assert "experiments_api.E001" in checked.stderr


@pytest.mark.parametrize("published", [*sorted(PUBLISHED_SECRET_KEYS), "   ", f" {DEVELOPMENT_SECRET_KEY} "])
def test_published_secret_key_refuses_to_start(published):
    started = start_the_application(operator_environment(SECRET_KEY=published))
    assert started.returncode != 0
    assert "ImproperlyConfigured" in started.stderr
    assert "serving" not in started.stdout


def test_a_real_secret_key_starts():
    started = start_the_application(operator_environment(SECRET_KEY=a_real_secret()))
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "serving"


def test_commands_that_only_read_code_work_without_a_secret():
    """makemigrations never signs anything, so an operator (or a check) can run it anywhere."""
    result = run_manage(
        operator_environment(DATABASE_URL="sqlite:///:memory:"), "makemigrations", "--check", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert "No changes detected" in result.stdout


def test_an_unusable_secret_never_digests_an_api_key():
    code = (
        "import django; django.setup()\n"
        "from accounts.services import personal_api_key_digest\n"
        "personal_api_key_digest('phx_x')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=operator_environment(DATABASE_URL="sqlite:///:memory:"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr


def test_debug_on_runs_with_the_development_secret():
    result = read_setting(
        operator_environment(DEBUG="true"), "settings.SECRET_KEY, settings.SECURE_SSL_REDIRECT"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{DEVELOPMENT_SECRET_KEY} False"


def test_check_deploy_is_clean_for_production_settings():
    env = operator_environment(SECRET_KEY=a_real_secret(), ALLOWED_HOSTS="experiments.example.com")
    result = run_manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_unexpected_host_gets_no_debug_page():
    """The attack that opened issue 12: a wrong Host header showed Django's settings page."""
    script = (
        "import django; django.setup();"
        "from django.test import Client;"
        "response = Client().get('/_liveness', HTTP_HOST='attacker.example', secure=True);"
        "print(response.status_code, b'REDIS_URL' in response.content, b'Traceback' in response.content)"
    )
    env = operator_environment(SECRET_KEY=a_real_secret(), REDIS_URL="redis://:hunter2@127.0.0.1:1/0")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["400", "False", "False"]


def test_plain_http_is_redirected_but_health_is_not():
    script = (
        "import django; django.setup();"
        "from django.test import Client;"
        "client = Client(HTTP_HOST='localhost');"
        "print(client.get('/api/projects/').status_code, client.get('/_health').status_code,"
        " client.get('/_liveness').status_code)"
    )
    env = operator_environment(SECRET_KEY=a_real_secret())
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    api_status, health_status, liveness_status = result.stdout.split()
    assert api_status == "301"
    assert health_status in ("200", "503")
    assert liveness_status == "200"

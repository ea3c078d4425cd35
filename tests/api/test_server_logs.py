"""What reaches the logs: credentials redacted, 500 tracebacks with their request id in the error
log even when gunicorn runs as a daemon, and the worker count gunicorn really runs with."""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from experiments_api.logs import RedactCredentialsFilter, RequestIdFilter, redact_credentials

ROOT = Path(__file__).resolve().parents[2]
SECRET = "phx_" + "S3cr3tKeyMaterial" * 2 + "abcdefghi"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f"GET /api/projects/?personal_api_key={SECRET}&limit=5 HTTP/1.1",
            "GET /api/projects/?personal_api_key=[REDACTED]&limit=5 HTTP/1.1",
        ),
        ("/flags/?token=phc_abc&v=2", "/flags/?token=[REDACTED]&v=2"),
        ("/x?API_KEY=abc;secret=def", "/x?API_KEY=[REDACTED];secret=[REDACTED]"),
        ("/x?personal%5Fapi%5Fkey=abc", "/x?personal%5Fapi%5Fkey=[REDACTED]"),
        (f"Authorization: Bearer {SECRET}", "Authorization: Bearer phx_[REDACTED]"),
        ("/x?limit=5&tokenize=no", "/x?limit=5&tokenize=no"),
    ],
)
def test_redaction(line, expected):
    assert redact_credentials(line) == expected


def test_log_records_are_redacted_with_their_request_id():
    class Request:
        request_id = "req-42"

    record = logging.LogRecord(
        "django.request",
        logging.ERROR,
        __file__,
        1,
        "Internal Server Error: %s",
        (f"/x?token={SECRET}",),
        None,
    )
    record.request = Request()
    assert RequestIdFilter().filter(record) and RedactCredentialsFilter().filter(record)
    assert record.getMessage() == "Internal Server Error: /x?token=[REDACTED] (request_id=req-42)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def schema_less_database_url() -> str:
    """The server's maintenance database: reachable, but without this project's tables, so every
    query the API makes fails with a (real) 500."""
    settings = connection.settings_dict
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{settings['USER']}{password}@{host}:{port}/postgres"


def request(url: str, *, request_id: str, body: bytes | None = None) -> int:
    outgoing = urllib.request.Request(url, data=body, headers={"X-Request-ID": request_id})
    if body is not None:
        outgoing.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(outgoing, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def wait_for(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.django_db
def test_daemonized_gunicorn_logs_500_tracebacks_with_request_ids_and_no_secrets(tmp_path):
    port = free_port()
    error_log, access_log, pid_file = (
        tmp_path / "error.log",
        tmp_path / "access.log",
        tmp_path / "gunicorn.pid",
    )
    env = {
        name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "GUNICORN_ERROR_LOG")
    }
    env.update(
        DATABASE_URL=schema_less_database_url(),
        DJANGO_SETTINGS_MODULE="experiments_api.settings",
        SECURE_SSL_REDIRECT="false",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        GUNICORN_ACCESS_LOG=str(access_log),
        GUNICORN_DAEMON_ERROR_LOG=str(error_log),
    )
    command = [sys.executable, "-m", "gunicorn", "experiments_api.wsgi:application", "-c", "gunicorn.conf.py"]
    subprocess.run([*command, "--daemon", "--pid", str(pid_file), "-w", "2"], cwd=ROOT, env=env, check=True)
    wait_for(pid_file.exists, "the daemon's pid file")
    master = int(pid_file.read_text())
    try:
        wait_for(lambda: listening(port), "the daemon to listen")
        base = f"http://127.0.0.1:{port}"
        assert request(f"{base}/api/users/@me/?personal_api_key={SECRET}", request_id="req-api-500") == 500
        flags_body = b'{"api_key": "phc_public", "distinct_id": "u"}'
        assert (
            request(f"{base}/flags/?v=2&token=phc_public", request_id="req-flags-500", body=flags_body) == 500
        )
        wait_for(lambda: access_log.exists() and "req-flags-500" in access_log.read_text(), "the access log")
        wait_for(lambda: "req-flags-500" in error_log.read_text(), "the error log")
    finally:
        os.kill(master, signal.SIGTERM)
        wait_for(lambda: not pid_file.exists(), "the daemon to stop")

    errors = error_log.read_text()
    assert "Running as a daemon" in errors
    assert "Running 2 workers without REDIS_URL" in errors
    assert errors.count("Traceback (most recent call last)") >= 2
    assert "request_id=req-api-500" in errors
    assert "request_id=req-flags-500" in errors
    assert "ProgrammingError" in errors
    accesses = access_log.read_text()
    assert "personal_api_key=[REDACTED]" in accesses
    assert "token=[REDACTED]" in accesses
    for text in (errors, accesses):
        assert SECRET not in text
        assert SECRET[4:20] not in text

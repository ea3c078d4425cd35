"""The database backend's health check: no round trip for a healthy idle connection, and a connection
the server ended is found unusable (so Django replaces it before a request fails on it)."""

import time

import psycopg
import pytest
from django.db import connections
from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQLDatabaseWrapper

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def idle_connection():
    connection = connections["default"]
    connection.ensure_connection()
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    yield connection
    connection.close()


def test_a_healthy_idle_connection_is_usable_without_a_query(idle_connection, monkeypatch):
    asked = []
    monkeypatch.setattr(PostgreSQLDatabaseWrapper, "is_usable", lambda self: asked.append(self) or True)
    assert idle_connection.is_usable() is True
    assert asked == []


def test_a_connection_the_server_ended_is_unusable(idle_connection):
    backend_pid = idle_connection.connection.info.backend_pid
    settings = idle_connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [backend_pid])

    deadline = time.monotonic() + 5
    while idle_connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.05)  # the terminated backend's farewell reaches the socket a moment later
    assert idle_connection.is_usable() is False

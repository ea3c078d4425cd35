"""Running the real results worker (procrastinate) against the test database.

The worker runs jobs in threads with their own database connections, so tests that run it use a
transactional database (`django_db(transaction=True)`): what the test writes is committed and the
worker sees it."""

from collections.abc import Callable

import pytest
from django.db import connection
from procrastinate.contrib.django import app

QUEUE_TABLES = (
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_jobs",
    "procrastinate_workers",
)


def queue_rows(sql: str, *params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@pytest.fixture
def run_worker(monkeypatch, settings) -> Callable[[], None]:
    """Run a worker until the queue has nothing left to do now (jobs waiting for a retry stay)."""
    # Periodic tasks fire on the wall clock; a test asks for them explicitly instead.
    monkeypatch.setattr(app.periodic_registry, "periodic_tasks", {})
    # Worker threads close their connections after each job, so none outlives the test database.
    for database in settings.DATABASES.values():
        database["CONN_MAX_AGE"] = 0

    def run() -> None:
        # As `manage.py procrastinate worker` does: the worker gets its own psycopg connections.
        with app.replace_connector(app.connector.get_worker_connector()):
            app.run_worker(
                wait=False,
                install_signal_handlers=False,
                listen_notify=False,
                concurrency=1,
                queues=["results"],
            )

    yield run
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(QUEUE_TABLES)} CASCADE")

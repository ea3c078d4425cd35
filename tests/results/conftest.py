"""Running the real results worker (procrastinate) against the test database.

The worker runs jobs in threads with their own database connections, so tests that run it use a
transactional database (`django_db(transaction=True)`): what the test writes is committed and the
worker sees it."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from procrastinate.contrib.django import app

from tests.factories import ExperimentFactory, FeatureFlagFactory, multivariate_filters

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


@pytest.fixture(autouse=True)
def empty_queue(request) -> None:
    """Each test sees an empty queue: jobs committed by an earlier transactional test (or its other
    event-store run) must not show up in this one's assertions."""
    uses_database = request.node.get_closest_marker("django_db") is not None or bool(
        {"db", "transactional_db", "live_server", "api"} & set(request.fixturenames)
    )
    if uses_database:
        request.getfixturevalue("db")
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(QUEUE_TABLES)} CASCADE")


@pytest.fixture
def run_worker(monkeypatch, settings) -> Iterator[Callable[[], None]]:
    """Run a worker until the queue has nothing left to do now (jobs waiting for a retry stay)."""
    # Periodic tasks fire on the wall clock; a test asks for them explicitly instead.
    monkeypatch.setattr(app.periodic_registry, "periodic_tasks", {})
    # Worker threads close their connections after each job, so none outlives the test database.
    for database in settings.DATABASES.values():
        monkeypatch.setitem(database, "CONN_MAX_AGE", 0)

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


CONVERSION = {
    "kind": "ExperimentMetric",
    "metric_type": "mean",
    "uuid": "7d0c4c7e-3b7a-4c55-9a51-6f1d1b2f0a11",
    "fingerprint": "e2e-conversion",
    "source": {"kind": "EventsNode", "event": "purchase", "math": "sum", "math_property": "amount"},
}


@pytest.fixture
def recent_experiment(project):
    """A 50/50 experiment started at midnight UTC two days ago (three days in its timeseries, today
    included), measuring the sum of `purchase.amount`."""
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    flag = FeatureFlagFactory(
        project=project, key="checkout-e2e", filters=multivariate_filters([("control", 50), ("test", 50)])
    )
    return ExperimentFactory(project=project, feature_flag=flag, start_date=start, metrics=[CONVERSION])

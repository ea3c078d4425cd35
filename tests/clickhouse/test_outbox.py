"""With EVENTS_BACKEND=clickhouse, intake commits events to the PostgreSQL outbox and the drain moves
them to ClickHouse: nothing accepted is lost while ClickHouse is down, nothing arrives twice."""

import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from events.clickhouse import ClickHouseUnavailable, EventRow, make_client
from events.models import Event, PendingEvent
from events.services import pending_events_drain
from results.engines.base import EntityValue, EventSelector, ExposureDefinition, MeanMetric
from results.models import MetricRollup
from tests.results.events import exposure, running_experiment

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 5, 4, 12, tzinfo=UTC)


def batch(prefix: str, count: int) -> list[dict]:
    return [
        {
            "event": "purchase",
            "distinct_id": f"{prefix}-{index}",
            "timestamp": (WHEN + timedelta(seconds=index)).isoformat(),
            "uuid": str(uuid.uuid4()),
            "properties": {"amount": index},
        }
        for index in range(count)
    ]


def post_batch(project, events: list[dict]) -> None:
    response = Client().post(
        "/batch/",
        json.dumps({"api_key": project.api_token, "batch": events}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content


def stored_uuids(client, project) -> list[str]:
    rows = client.query(
        "SELECT toString(uuid) FROM events WHERE project_id = {project:Int64}", {"project": project.id}
    )
    return sorted(row[0] for row in rows)


def sent_uuids(*batches: list[dict]) -> list[str]:
    return sorted(event["uuid"] for events in batches for event in events)


@pytest.fixture
def outage(clickhouse_backend):
    """Takes the events table away from ClickHouse (every insert and query fails) until ended."""
    client = clickhouse_backend

    class Outage:
        def begin(self):
            client.command("DETACH TABLE events")

        def end(self):
            client.command("ATTACH TABLE events")

    control = Outage()
    yield control
    with contextlib.suppress(ClickHouseUnavailable):  # already attached
        control.end()


def test_intake_commits_to_the_outbox_and_the_drain_moves_each_event_once(project, clickhouse_backend):
    first, second = batch("a", 30), batch("b", 25)
    post_batch(project, first)
    post_batch(project, second)
    post_batch(project, first)  # an SDK retrying a batch it could not confirm
    assert PendingEvent.objects.filter(project=project).count() == 55
    assert not Event.objects.exists()
    assert stored_uuids(clickhouse_backend, project) == []

    assert pending_events_drain(batch_size=7) == 55
    assert not PendingEvent.objects.exists()
    assert stored_uuids(clickhouse_backend, project) == sent_uuids(first, second)
    assert pending_events_drain() == 0


def test_events_accepted_during_an_outage_arrive_once_it_is_back(project, clickhouse_backend, outage):
    before = batch("before", 10)
    post_batch(project, before)
    pending_events_drain()

    outage.begin()
    during = batch("during", 40)
    post_batch(project, during[:20])  # intake answers while ClickHouse is down
    with pytest.raises(ClickHouseUnavailable):
        pending_events_drain(batch_size=15)
    post_batch(project, during[20:])
    post_batch(project, during[:20])  # a retry while still down: the outbox keeps one copy
    with pytest.raises(CommandError, match="events stay pending"):
        call_command("clickhouse_drain", batch_size=15)
    assert PendingEvent.objects.filter(project=project).count() == 40

    outage.end()
    call_command("clickhouse_drain", batch_size=15)
    assert not PendingEvent.objects.exists()
    assert stored_uuids(clickhouse_backend, project) == sent_uuids(before, during)


def test_a_batch_clickhouse_took_but_the_drain_did_not_confirm_is_not_doubled(project, clickhouse_backend):
    """The insert reaches ClickHouse but its answer is lost (or the drain dies before deleting the
    batch): the batch stays pending and is sent again, and ClickHouse keeps one copy."""

    class AnswerLost:
        def insert_events(self, rows, deduplication_token):
            clickhouse_backend.insert_events(rows, deduplication_token)
            raise ClickHouseUnavailable("connection reset after the insert")

    events = batch("lost", 12)
    post_batch(project, events)
    with pytest.raises(ClickHouseUnavailable):
        pending_events_drain(client=AnswerLost())
    assert PendingEvent.objects.count() == 12
    assert len(stored_uuids(clickhouse_backend, project)) == 12

    assert pending_events_drain() == 12
    assert stored_uuids(clickhouse_backend, project) == sent_uuids(events)  # same token: skipped


def test_a_resent_event_already_in_clickhouse_counts_once_in_results(project, clickhouse_backend):
    """An SDK retry after the first copy was drained reaches ClickHouse twice (different batch,
    re-corrected timestamp); the table collapses rows by uuid and the engine reads FINAL."""
    experiment = running_experiment(project)
    events = [exposure(experiment, "u1", "test", WHEN), *batch("u1", 1)]
    events[1]["distinct_id"] = "u1"
    post_batch(project, events)
    pending_events_drain()
    resent = [dict(event, timestamp=(WHEN + timedelta(milliseconds=5)).isoformat()) for event in events]
    post_batch(project, resent)
    pending_events_drain()

    from results.engines.clickhouse import ClickHouseResultsEngine

    definition = ExposureDefinition(
        project_id=project.id,
        selector=EventSelector("$feature_flag_called"),
        variant_property="$feature_flag_response",
        variants=("control", "test"),
        date_from=WHEN - timedelta(days=1),
        date_to=WHEN + timedelta(days=1),
    )
    rows = ClickHouseResultsEngine(clickhouse_backend).metric_statistics(
        exposure=definition, metric=MeanMetric(EntityValue(EventSelector("purchase"))), matured_before=None
    )
    assert [(row.key, row.number_of_samples, row.sum) for row in rows] == [("test", 1, 1.0)]


def test_results_answer_503_while_clickhouse_is_down(api, project, clickhouse_backend, outage):
    experiment = running_experiment(project)
    outage.begin()
    response = api.post(
        api.url("query/"),
        {
            "query": {
                "kind": "ExperimentQuery",
                "experiment_id": experiment.id,
                "metric": {
                    "kind": "ExperimentMetric",
                    "metric_type": "mean",
                    "source": {"kind": "EventsNode", "event": "purchase"},
                },
            },
            "refresh": "force_blocking",
        },
        format="json",
    )
    assert response.status_code == 503, response.content
    assert "ClickHouse" in json.dumps(response.json())


def test_an_unreachable_server_leaves_events_pending(project, clickhouse_backend, settings):
    settings.CLICKHOUSE_URL = "http://127.0.0.1:9/default"  # nothing listens on the discard port
    events = batch("down", 5)
    post_batch(project, events)
    with pytest.raises(ClickHouseUnavailable):
        pending_events_drain(client=make_client(settings.CLICKHOUSE_URL))
    assert PendingEvent.objects.filter(project=project).count() == 5


def test_backfill_copies_stored_events_and_can_be_repeated(project, clickhouse_store, settings):
    _, client = clickhouse_store
    client.command("TRUNCATE TABLE events")
    settings.EVENTS_BACKEND = "postgres"
    events = batch("old", 23)
    post_batch(project, events)
    assert Event.objects.count() == 23
    settings.CLICKHOUSE_URL = clickhouse_store[0]
    call_command("clickhouse_backfill", batch_size=10, project_id=project.id)
    call_command("clickhouse_backfill", batch_size=6)  # again, in other batches: still one copy each
    rows = client.query(
        "SELECT toString(uuid), count() FROM events FINAL WHERE project_id = {project:Int64} GROUP BY uuid",
        {"project": project.id},
    )
    assert sorted(row[0] for row in rows) == sent_uuids(events)
    assert {row[1] for row in rows} == {1}


def test_schema_command_is_idempotent(clickhouse_store, settings):
    settings.CLICKHOUSE_URL = clickhouse_store[0]
    call_command("clickhouse_migrate")
    names = clickhouse_store[1].query("SELECT name FROM schema_migrations ORDER BY name", {})
    assert names == [("0001_events",)]


def test_event_rows_keep_text_exactly(clickhouse_backend):
    awkward = "tab\there 'quote' \\backslash\\ newline\n ünïcode {json}"
    clickhouse_backend.insert_events(
        [EventRow(1, str(uuid.uuid4()), awkward, awkward, WHEN, 1, json.dumps({"k": awkward}))], "awkward"
    )
    rows = clickhouse_backend.query(
        "SELECT event, JSONExtractString(properties, 'k') FROM events WHERE event = {event:String}",
        {"event": awkward},
    )
    assert rows == [(awkward, awkward)]


def test_results_on_clickhouse_are_computed_there_and_keep_no_postgres_rollups(
    api, project, clickhouse_backend
):
    experiment = running_experiment(project)
    events = [exposure(experiment, f"u{index}", ("control", "test")[index % 2], WHEN) for index in range(6)]
    events += [dict(purchase, distinct_id=f"u{index}") for index, purchase in enumerate(batch("p", 3))]
    post_batch(project, events)
    pending_events_drain()
    response = api.post(
        api.url("query/"),
        {
            "query": {
                "kind": "ExperimentQuery",
                "experiment_id": experiment.id,
                "metric": {
                    "kind": "ExperimentMetric",
                    "metric_type": "mean",
                    "source": {"kind": "EventsNode", "event": "purchase"},
                },
            }
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["baseline"]["number_of_samples"], body["baseline"]["sum"]) == (3, 2)
    assert (body["variant_results"][0]["number_of_samples"], body["variant_results"][0]["sum"]) == (3, 1)
    assert not MetricRollup.objects.exists()

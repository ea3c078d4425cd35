"""Building experiments and sending their events through the real `/batch/` intake, for results tests."""

import json
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.test import Client

from events.clickhouse import clickhouse_client
from events.models import Event
from events.services import pending_events_drain
from tests.factories import ExperimentFactory, FeatureFlagFactory, multivariate_filters

START = datetime(2026, 1, 1, tzinfo=UTC)


def at(days: float = 0, hours: float = 0) -> datetime:
    """An instant `days` and `hours` after the experiments' start."""
    return START + timedelta(days=days, hours=hours)


def running_experiment(project, variants=None, flag_key=None, **fields):
    flag = FeatureFlagFactory(
        project=project,
        key=flag_key or f"exp-flag-{uuid.uuid4().hex[:8]}",
        filters=multivariate_filters(variants or [("control", 50), ("test", 50)]),
    )
    return ExperimentFactory(project=project, feature_flag=flag, start_date=START, **fields)


def exposure(experiment, distinct_id: str, variant: str, when: datetime, **properties) -> dict:
    return {
        "event": "$feature_flag_called",
        "distinct_id": distinct_id,
        "timestamp": when.isoformat(),
        "uuid": str(uuid.uuid4()),
        "properties": {
            "$feature_flag": experiment.feature_flag.key,
            "$feature_flag_response": variant,
            **properties,
        },
    }


def event(name: str, distinct_id: str, when: datetime, **properties) -> dict:
    return {
        "event": name,
        "distinct_id": distinct_id,
        "timestamp": when.isoformat(),
        "uuid": str(uuid.uuid4()),
        "properties": properties,
    }


def stored_events(project) -> int:
    """How many events of `project` results can see: in ClickHouse (after draining the outbox) or
    in PostgreSQL, whichever `EVENTS_BACKEND` says."""
    if settings.EVENTS_BACKEND != "clickhouse":
        return Event.objects.filter(project=project).count()
    pending_events_drain()
    rows = clickhouse_client().query(
        "SELECT count() FROM events FINAL WHERE project_id = {project:Int64}", {"project": project.id}
    )
    return rows[0][0]


def send(project, events: list[dict]) -> None:
    """POST the events to `/batch/` with the project's token, as an SDK does; all must be stored."""
    before = stored_events(project)
    response = Client().post(
        "/batch/",
        json.dumps({"api_key": project.api_token, "batch": events}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert stored_events(project) == before + len(events)

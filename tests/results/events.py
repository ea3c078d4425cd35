"""Building experiments and sending their events through the real `/batch/` intake, for results tests."""

import json
import uuid
from datetime import UTC, datetime, timedelta

from django.test import Client

from events.models import Event
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


def send(project, events: list[dict]) -> None:
    """POST the events to `/batch/` with the project's token, as an SDK does; all must be stored."""
    before = Event.objects.filter(project=project).count()
    response = Client().post(
        "/batch/",
        json.dumps({"api_key": project.api_token, "batch": events}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert Event.objects.filter(project=project).count() == before + len(events)

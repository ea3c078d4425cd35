"""Simultaneous lifecycle requests from real parallel database connections: exactly one wins, the
others are refused with the state machine's message, and the experiment and its flag agree."""

import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from activity.models import ActivityLog
from experiments.lifecycle import ALREADY_ENDED, ALREADY_LAUNCHED, ALREADY_PAUSED
from experiments.models import Experiment
from flags.models import FeatureFlag
from tests.factories import ExperimentFactory, ExperimentHoldoutFactory, FeatureFlagFactory

pytestmark = pytest.mark.django_db(transaction=True)

PARALLEL = 20
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def post_in_parallel(secret: str, url: str, body: dict | None = None) -> list[tuple[int, dict]]:
    """POST `url` from PARALLEL threads, each with its own client and database connection, released
    together by a barrier. Returns every (status, body)."""
    barrier = threading.Barrier(PARALLEL)
    results: list[tuple[int, dict]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
            barrier.wait(timeout=30)
            response = client.post(url, body or {}, format="json")
            with lock:
                results.append((response.status_code, response.json()))
        except BaseException as error:  # surfaced in the main thread below
            with lock:
                errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(results) == PARALLEL
    return results


def assert_one_winner(results: list[tuple[int, dict]], refusal: str) -> dict:
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [400] * (PARALLEL - 1), statuses
    for status, body in results:
        if status == 400:
            assert body == {
                "type": "validation_error",
                "code": "invalid_input",
                "detail": refusal,
                "attr": None,
            }
    return next(body for status, body in results if status == 200)


def test_twenty_simultaneous_launches(api):
    experiment = ExperimentFactory(project=api.project, feature_flag__project=api.project)
    version_before = experiment.feature_flag.version

    results = post_in_parallel(api.secret, api.url(f"experiments/{experiment.id}/launch/"))

    winner = assert_one_winner(results, ALREADY_LAUNCHED)
    assert winner["status"] == "running"
    experiment = Experiment.objects.select_related("feature_flag").get(pk=experiment.id)
    assert experiment.start_date is not None
    assert winner["start_date"] == experiment.start_date.isoformat().replace("+00:00", "Z")
    assert experiment.status == "running"
    assert experiment.feature_flag.active is True
    assert experiment.feature_flag.version == version_before + 1
    assert (
        ActivityLog.objects.filter(
            scope="Experiment", item_id=str(experiment.id), activity="launched"
        ).count()
        == 1
    )
    assert (
        ActivityLog.objects.filter(scope="FeatureFlag", item_id=str(experiment.feature_flag_id)).count() == 1
    )


def test_twenty_simultaneous_pauses(api):
    experiment = ExperimentFactory(
        project=api.project, start_date=T0, feature_flag__project=api.project, feature_flag__active=True
    )
    results = post_in_parallel(api.secret, api.url(f"experiments/{experiment.id}/pause/"))
    winner = assert_one_winner(results, ALREADY_PAUSED)
    assert winner["status"] == "paused"
    experiment = Experiment.objects.select_related("feature_flag").get(pk=experiment.id)
    assert experiment.feature_flag.active is False
    assert experiment.feature_flag.version == 2
    assert ActivityLog.objects.filter(scope="Experiment", activity="paused").count() == 1


def test_twenty_simultaneous_ends(api):
    experiment = ExperimentFactory(
        project=api.project, start_date=T0, feature_flag__project=api.project, feature_flag__active=True
    )
    results = post_in_parallel(
        api.secret, api.url(f"experiments/{experiment.id}/end/"), {"conclusion": "won"}
    )
    winner = assert_one_winner(results, ALREADY_ENDED)
    experiment.refresh_from_db()
    assert winner["end_date"] == experiment.end_date.isoformat().replace("+00:00", "Z")
    assert experiment.conclusion == "won"
    assert ActivityLog.objects.filter(scope="Experiment", activity="ended").count() == 1


def test_simultaneous_creates_with_one_new_flag_key(api):
    """Racing creates of a new key: one flag exists afterwards, and every request is a 201 (it made or
    reused the flag) or the flag's "key taken" 400 — never a server error or a second flag."""
    results = post_in_parallel(
        api.secret, api.url("experiments/"), {"name": "Race", "feature_flag_key": "contested"}
    )
    statuses = [status for status, _ in results]
    assert set(statuses) <= {201, 400}, statuses
    assert 201 in statuses
    for status, body in results:
        if status == 400:
            assert body == {
                "type": "validation_error",
                "code": "unique",
                "detail": "There is already a feature flag with this key.",
                "attr": None,
            }
    flags = FeatureFlag.objects.filter(key="contested")
    assert flags.count() == 1
    created = Experiment.objects.filter(name="Race")
    assert created.count() == statuses.count(201)
    assert set(created.values_list("feature_flag_id", flat=True)) == {flags.get().id}


def test_simultaneous_flag_edits_each_bump_the_version(api):
    flag = FeatureFlagFactory(project=api.project, version=1)
    barrier = threading.Barrier(PARALLEL)
    statuses: list[int] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {api.secret}")
            barrier.wait(timeout=30)
            response = client.patch(
                api.url(f"feature_flags/{flag.id}/"), {"name": f"name {index}"}, format="json"
            )
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * PARALLEL
    flag.refresh_from_db()
    assert flag.version == 1 + PARALLEL
    assert (
        ActivityLog.objects.filter(scope="FeatureFlag", item_id=str(flag.id), activity="updated").count()
        == PARALLEL
    )


def test_a_write_waiting_for_the_lock_sees_the_holdout_another_write_just_set(api):
    """A PATCH that waited for the experiment's lock while another transaction moved the
    experiment to another holdout reads the row PostgreSQL rechecked after that commit: it keeps
    and shows the new holdout instead of writing back none."""
    first = ExperimentHoldoutFactory(project=api.project)
    second = ExperimentHoldoutFactory(project=api.project)
    experiment = ExperimentFactory(project=api.project, feature_flag__project=api.project, holdout=first)
    answers: list = []

    def rename() -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {api.secret}")
            answers.append(
                client.patch(api.url(f"experiments/{experiment.id}/"), {"name": "Renamed"}, format="json")
            )
        finally:
            connection.close()

    with transaction.atomic():
        Experiment.objects.filter(pk=experiment.id).update(holdout=second)
        renaming = threading.Thread(target=rename)
        renaming.start()
        for _ in range(500):
            with connection.cursor() as cursor:
                # Activity is read as of the transaction's first look unless its snapshot is cleared.
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                if cursor.fetchone()[0]:
                    break
            time.sleep(0.01)
        else:
            pytest.fail(f"the PATCH never waited for the experiment's lock: {answers and answers[0].content}")
    renaming.join(timeout=60)

    assert answers[0].status_code == 200, answers[0].content
    stored = Experiment.objects.get(pk=experiment.id)
    assert (stored.name, stored.holdout_id) == ("Renamed", second.id)
    assert answers[0].json()["holdout"]["id"] == second.id

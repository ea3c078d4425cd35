"""Incremental rollups: after every random batch of events the rollup's statistics equal a full
recompute from the raw events, and entities no new event touched are not recomputed."""

import dataclasses
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from results import rollups
from results.definitions import metric_analysis
from results.engines.postgres import PostgresResultsEngine
from results.models import MetricRollup, RollupEntityRow
from results.services import experiment_metric_statistics
from tests.results.events import at, event, exposure, running_experiment, send

pytestmark = pytest.mark.django_db

METRICS = {
    "mean winsorized sum": {
        "kind": "ExperimentMetric",
        "metric_type": "mean",
        "source": {"kind": "EventsNode", "event": "purchase", "math": "sum", "math_property": "amount"},
        "upper_bound_percentile": 0.9,
        "conversion_window": 3,
        "conversion_window_unit": "day",
    },
    "unique sessions": {
        "kind": "ExperimentMetric",
        "metric_type": "mean",
        "source": {"kind": "EventsNode", "event": "$pageview", "math": "unique_session"},
    },
    "funnel": {
        "kind": "ExperimentMetric",
        "metric_type": "funnel",
        "series": [{"kind": "EventsNode", "event": "$pageview"}, {"kind": "EventsNode", "event": "purchase"}],
        "conversion_window": 2,
        "conversion_window_unit": "day",
    },
    "strict funnel": {
        "kind": "ExperimentMetric",
        "metric_type": "funnel",
        "series": [{"kind": "EventsNode", "event": "$pageview"}, {"kind": "EventsNode", "event": "purchase"}],
        "funnel_order_type": "strict",
    },
    "ratio": {
        "kind": "ExperimentMetric",
        "metric_type": "ratio",
        "numerator": {"kind": "EventsNode", "event": "purchase", "math": "sum", "math_property": "amount"},
        "denominator": {"kind": "EventsNode", "event": "$pageview"},
    },
    "retention": {
        "kind": "ExperimentMetric",
        "metric_type": "retention",
        "start_event": {"kind": "EventsNode", "event": "$pageview"},
        "completion_event": {"kind": "EventsNode", "event": "purchase"},
        "retention_window_start": 1,
        "retention_window_end": 5,
        "retention_window_unit": "day",
        "start_handling": "first_seen",
    },
}


COUNT_PURCHASES = {
    "kind": "ExperimentMetric",
    "metric_type": "mean",
    "source": {"kind": "EventsNode", "event": "purchase"},
}


@pytest.fixture(autouse=True)
def no_commit_lag(monkeypatch):
    # Every stored event may pass the watermark at once, so later refreshes really are incremental.
    monkeypatch.setattr(rollups, "COMMIT_LAG", timedelta(0))


def random_batch(rng: random.Random, experiment, users: int, size: int) -> list[dict]:
    events = []
    for _ in range(size):
        user = f"u{rng.randrange(users)}"
        when = at(rng.uniform(0, 20), hours=rng.uniform(0, 24))
        kind = rng.random()
        if kind < 0.3:
            events.append(
                exposure(experiment, user, rng.choice(["control", "control", "test", "holdout-9"]), when)
            )
        elif kind < 0.6:
            events.append(event("purchase", user, when, amount=rng.choice([5, 10, 20, 500, "7.5", None])))
        else:
            events.append(event("$pageview", user, when, **{"$session_id": f"s{rng.randrange(4)}"}))
    return events


def full_recompute(experiment, metric):
    analysis = metric_analysis(experiment=experiment, metric=metric, as_of=None, now=timezone.now())
    rows = PostgresResultsEngine().metric_statistics(
        exposure=analysis.exposure, metric=analysis.metric, matured_before=analysis.matured_before
    )
    return {row.key: row for row in rows}


def comparable(row) -> dict:
    """The statistics' fields, floats rounded so that summation order cannot tell them apart."""
    return {
        field: round(value, 6) if isinstance(value, float) else value for field, value in vars(row).items()
    }


@pytest.mark.parametrize("name", list(METRICS))
@pytest.mark.parametrize("handling", ["exclude", "first_seen"])
def test_rollup_equals_a_full_recompute_after_every_random_batch(project, name, handling):
    rng = random.Random(f"{name}-{handling}")
    experiment = running_experiment(
        project,
        exposure_criteria={"multiple_variant_handling": handling},
        stats_config={"cuped": {"enabled": True, "lookback_days": 3}},
    )
    metric = METRICS[name]
    for _ in range(5):
        send(project, random_batch(rng, experiment, users=25, size=60))
        rows, _, _ = experiment_metric_statistics(experiment=experiment, metric=metric)
        from_rollup = {row.key: comparable(row) for row in rows if row.number_of_samples}
        recomputed = {key: comparable(row) for key, row in full_recompute(experiment, metric).items()}
        assert from_rollup == recomputed
    assert MetricRollup.objects.filter(experiment=experiment).count() == 1


def test_untouched_entities_are_not_recomputed_and_the_watermark_moves(project):
    experiment = running_experiment(project)
    metric = METRICS["mean winsorized sum"]
    send(
        project,
        [
            exposure(experiment, "quiet", "control", at(1)),
            event("purchase", "quiet", at(1, hours=1), amount=5),
            exposure(experiment, "busy", "test", at(1)),
        ],
    )
    experiment_metric_statistics(experiment=experiment, metric=metric)
    rollup = MetricRollup.objects.get(experiment=experiment)
    quiet_row = RollupEntityRow.objects.get(rollup=rollup, entity="quiet")
    first_watermark = rollup.event_watermark
    assert first_watermark > 0

    send(project, [event("purchase", "busy", at(1, hours=2), amount=7)])
    rows, _, _ = experiment_metric_statistics(experiment=experiment, metric=metric)
    rollup.refresh_from_db()
    assert rollup.event_watermark > first_watermark
    assert RollupEntityRow.objects.get(rollup=rollup, entity="quiet").id == quiet_row.id
    assert RollupEntityRow.objects.get(rollup=rollup, entity="busy").value == 7
    assert {row.key: row.sum for row in rows} == {"control": 5, "test": 7}


def test_a_past_as_of_is_computed_in_full_and_leaves_the_rollup_alone(project):
    experiment = running_experiment(project)
    metric = METRICS["mean winsorized sum"]
    send(project, [exposure(experiment, "a", "control", at(1)), exposure(experiment, "b", "control", at(5))])
    experiment_metric_statistics(experiment=experiment, metric=metric)
    rollup = MetricRollup.objects.get(experiment=experiment)
    past, _, _ = experiment_metric_statistics(experiment=experiment, metric=metric, as_of=at(3))
    assert past[0].number_of_samples == 1
    assert MetricRollup.objects.get(id=rollup.id).covered_until == rollup.covered_until


def test_a_changed_definition_gets_its_own_rollup(project):
    experiment = running_experiment(project)
    send(project, [exposure(experiment, "a", "control", at(1)), exposure(experiment, "b", "test", at(1))])
    experiment_metric_statistics(experiment=experiment, metric=METRICS["mean winsorized sum"])
    experiment.excluded_variants = ["test"]
    experiment.stats_config = {"baseline_variant_key": "control"}
    rows, _, _ = experiment_metric_statistics(experiment=experiment, metric=METRICS["mean winsorized sum"])
    assert [row.key for row in rows] == ["control"]
    assert MetricRollup.objects.filter(experiment=experiment).count() == 2


def test_rollups_unread_for_a_week_are_dropped_when_a_new_one_is_built(project):
    experiment = running_experiment(project)
    send(project, [exposure(experiment, "a", "control", at(1))])
    experiment_metric_statistics(experiment=experiment, metric=METRICS["mean winsorized sum"])
    MetricRollup.objects.update(refreshed_at=timezone.now() - timedelta(days=8))
    experiment_metric_statistics(experiment=experiment, metric=METRICS["ratio"])
    assert MetricRollup.objects.filter(experiment=experiment).count() == 1
    assert RollupEntityRow.objects.filter(rollup__experiment=experiment).count() == 1


def test_events_timed_after_the_previous_window_end_come_in_when_it_moves(project):
    """An event stored early but timed after the window end (a clock ahead, or a late window) is
    picked up when the window end passes it, though the watermark went by it long ago."""
    experiment = running_experiment(project)
    send(
        project,
        [
            exposure(experiment, "early", "control", at(1)),
            exposure(experiment, "later", "test", at(6)),
            event("purchase", "early", at(7), amount=3),
        ],
    )
    analysis = metric_analysis(
        experiment=experiment,
        metric=COUNT_PURCHASES,
        as_of=None,
        now=timezone.now(),
    )

    def read(until):
        rows = rollups.metric_rollup_statistics(
            experiment_id=experiment.id,
            exposure=dataclasses.replace(analysis.exposure, date_to=until),
            metric=analysis.metric,
            matured_before=None,
        )
        return None if rows is None else {row.key: (row.number_of_samples, row.sum) for row in rows}

    assert read(at(5)) == {"control": (1, 0)}
    assert read(at(10)) == {"control": (1, 1), "test": (1, 0)}
    assert read(at(8)) is None  # an earlier window end than the rollup covers: computed in full instead

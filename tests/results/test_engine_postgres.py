"""Events in through `/batch/`, per-variant sufficient statistics out: exposures and metric values
checked against hand-computed numbers and PostHog's runner fixtures (spec §9.B)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from results.services import experiment_metric_statistics
from tests.factories import ExperimentHoldoutFactory, GroupTypeMappingFactory
from tests.results.events import at, event, exposure, running_experiment, send

pytestmark = pytest.mark.django_db


def mean_metric(event_name="purchase", math="total", math_property=None, **extra) -> dict:
    source = {"kind": "EventsNode", "event": event_name, "math": math}
    if math_property:
        source["math_property"] = math_property
    return {"kind": "ExperimentMetric", "metric_type": "mean", "source": source, **extra}


def statistics(experiment, metric, **kwargs) -> dict:
    rows, _, _ = experiment_metric_statistics(experiment=experiment, metric=metric, **kwargs)
    return {row.key: row for row in rows}


def expose_users(experiment, variant: str, count: int, prefix: str, when=None) -> list[dict]:
    return [exposure(experiment, f"{prefix}{index}", variant, when or at(1)) for index in range(count)]


def test_sum_metric_b1(project):
    experiment = running_experiment(project)
    events = expose_users(experiment, "control", 10, "c") + expose_users(experiment, "test", 10, "t")
    events += [event("purchase", f"c{index}", at(2), amount=10) for index in range(6)]
    events += [event("purchase", f"t{index}", at(2), amount=15) for index in range(8)]
    send(project, events)
    result = statistics(experiment, mean_metric(math="sum", math_property="amount"))
    assert (result["control"].number_of_samples, result["control"].sum) == (10, 60)
    assert (result["test"].number_of_samples, result["test"].sum) == (10, 120)
    assert result["control"].sum_squares == 600
    assert result["test"].sum_squares == 8 * 15**2


def test_count_metric_counts_only_events_after_first_exposure_and_inside_the_window(project):
    experiment = running_experiment(project, end_date=at(10))
    send(
        project,
        [
            exposure(experiment, "u1", "control", at(2)),
            event("purchase", "u1", at(1)),  # before exposure
            event("purchase", "u1", at(2)),  # same instant as exposure: counts
            event("purchase", "u1", at(3)),
            event("purchase", "u1", at(11)),  # after the end date, no conversion window
            event("other", "u1", at(3)),
            exposure(experiment, "u2", "test", at(-1)),  # exposed before the start: not exposed
            event("purchase", "u2", at(3)),
        ],
    )
    result = statistics(experiment, mean_metric())
    assert result["control"].number_of_samples == 1
    assert result["control"].sum == 2
    assert result["test"].number_of_samples == 0


def test_multiple_variants_are_excluded_by_default_and_first_seen_keeps_the_first(project):
    experiment = running_experiment(project)
    send(
        project,
        [
            exposure(experiment, "both", "test", at(1)),
            exposure(experiment, "both", "control", at(2)),
            exposure(experiment, "only", "control", at(1)),
            event("purchase", "both", at(3)),
            event("purchase", "only", at(3)),
        ],
    )
    excluded = statistics(experiment, mean_metric())
    assert excluded["control"].number_of_samples == 1
    assert excluded["test"].number_of_samples == 0
    experiment.exposure_criteria = {"multiple_variant_handling": "first_seen"}
    first_seen = statistics(experiment, mean_metric())
    assert (first_seen["control"].number_of_samples, first_seen["test"].number_of_samples) == (1, 1)
    assert first_seen["test"].sum == 1


def test_holdout_excluded_and_unknown_variants_are_invisible(project):
    holdout = ExperimentHoldoutFactory(project=project)
    experiment = running_experiment(
        project,
        variants=[("control", 34), ("test", 33), ("other", 33)],
        holdout=holdout,
        excluded_variants=["other"],
    )
    send(
        project,
        [
            exposure(experiment, "h", f"holdout-{holdout.id}", at(1)),
            exposure(experiment, "h", "control", at(2)),  # not $multiple: the holdout exposure is invisible
            exposure(experiment, "x", "other", at(1)),
            exposure(experiment, "y", "nonsense", at(1)),
            exposure(experiment, "z", "test", at(1)),
        ],
    )
    result = statistics(experiment, mean_metric())
    assert list(result) == ["control", "test"]
    assert (result["control"].number_of_samples, result["test"].number_of_samples) == (1, 1)


def test_other_flags_exposures_do_not_count(project):
    experiment = running_experiment(project)
    other = running_experiment(project)
    send(project, [exposure(other, "u1", "control", at(1)), exposure(experiment, "u2", "test", at(1))])
    result = statistics(experiment, mean_metric())
    assert (result["control"].number_of_samples, result["test"].number_of_samples) == (0, 1)


@pytest.mark.parametrize(
    ("percentiles", "control_amounts", "test_amounts", "expected"),
    [
        # B2: pooled bounds L = 102, U = 110.
        (
            {"lower_bound_percentile": 0.1, "upper_bound_percentile": 0.9},
            [1, *range(102, 110), 1110],
            list(range(101, 111)),
            (1056, 1056),
        ),
        # B4: upper bound over non-zero values only is 2000, so nothing is clipped.
        (
            {"upper_bound_percentile": 0.9, "ignore_zeros": True},
            [0] * 5 + [100] * 3 + [1000] * 2,
            [0] * 5 + [150] * 3 + [2000] * 2,
            (2300, 4450),
        ),
    ],
)
def test_winsorized_sum_b2_b4(project, percentiles, control_amounts, test_amounts, expected):
    experiment = running_experiment(project)
    events = []
    for variant, amounts in (("control", control_amounts), ("test", test_amounts)):
        for index, amount in enumerate(amounts):
            user = f"{variant}{index}"
            events.append(exposure(experiment, user, variant, at(1)))
            if amount:
                events.append(event("purchase", user, at(2), amount=amount))
    send(project, events)
    result = statistics(experiment, mean_metric(math="sum", math_property="amount", **percentiles))
    assert (result["control"].sum, result["test"].sum) == expected


def test_winsorized_count_b3(project):
    experiment = running_experiment(project)
    events = []
    for variant, counts in (("control", [1, *[3] * 8, 100]), ("test", [2, *[4] * 9])):
        for index, count in enumerate(counts):
            user = f"{variant}{index}"
            events.append(exposure(experiment, user, variant, at(1)))
            events += [event("purchase", user, at(2)) for _ in range(count)]
    send(project, events)
    metric = mean_metric(lower_bound_percentile=0.1, upper_bound_percentile=0.9)
    result = statistics(experiment, metric)
    assert (result["control"].sum, result["test"].sum) == (31, 39)


def test_unique_sessions_b5(project):
    experiment = running_experiment(project)
    send(
        project,
        [
            exposure(experiment, "c1", "control", at(1), **{"$session_id": "s-exposure"}),
            event("$pageview", "c1", at(2), **{"$session_id": "s1"}),
            event("$pageview", "c1", at(2), **{"$session_id": "s1"}),
            event("$pageview", "c1", at(3), **{"$session_id": "s2"}),
            event("$pageview", "c1", at(3), **{"$session_id": ""}),
            event("$pageview", "c1", at(3)),
            exposure(experiment, "t1", "test", at(1)),
            event("$pageview", "t1", at(2), **{"$session_id": "00000000-0000-0000-0000-000000000000"}),
        ],
    )
    result = statistics(experiment, mean_metric("$pageview", math="unique_session"))
    assert (result["control"].sum, result["test"].sum) == (2, 0)


def test_max_min_avg_b6(project):
    experiment = running_experiment(project)
    amounts = {"c1": [10, 20, 30], "c2": [5, 15, 25], "t1": [50, 60, 70], "t2": [40, 80, 90]}
    events = []
    for user, values in amounts.items():
        events.append(exposure(experiment, user, "control" if user.startswith("c") else "test", at(1)))
        events += [event("purchase", user, at(2), amount=value) for value in values]
    send(project, events)
    for math, expected in (("max", (55, 160)), ("min", (15, 90)), ("avg", (35, 130))):
        result = statistics(experiment, mean_metric(math=math, math_property="amount"))
        assert (result["control"].sum, result["test"].sum) == expected, math
        assert result["control"].number_of_samples == 2


def test_property_math_reads_numeric_strings_and_treats_the_rest_as_zero(project):
    experiment = running_experiment(project)
    send(
        project,
        [
            exposure(experiment, "u1", "control", at(1)),
            event("purchase", "u1", at(2), amount="12.5"),
            event("purchase", "u1", at(2), amount="a lot"),
            event("purchase", "u1", at(2), amount=1e300),
            event("purchase", "u1", at(2), amount={"nested": 1}),
            event("purchase", "u1", at(2)),
            event("purchase", "u1", at(2), amount=7.5),
        ],
    )
    total = statistics(experiment, mean_metric(math="sum", math_property="amount"))["control"]
    average = statistics(experiment, mean_metric(math="avg", math_property="amount"))["control"]
    assert total.sum == 20
    assert average.sum == pytest.approx(20 / 6)


def test_dau_and_threshold_b8(project):
    experiment = running_experiment(project)
    events = []
    for index, amount in enumerate([120, 100, 99, None]):
        events.append(exposure(experiment, f"u{index}", "control", at(1)))
        if amount is not None:
            events.append(event("purchase", f"u{index}", at(2), amount=amount / 2))
            events.append(event("purchase", f"u{index}", at(3), amount=amount / 2))
    send(project, events)
    threshold = statistics(experiment, mean_metric(math="sum", math_property="amount", threshold=100))
    assert (threshold["control"].number_of_samples, threshold["control"].sum) == (4, 2)
    assert threshold["control"].sum_squares == 2
    dau = statistics(experiment, mean_metric(math="dau"))
    assert dau["control"].sum == 3


def test_matured_users_b9(project):
    """Maturity is judged against the real clock: the last exposure plus the window must be past."""
    experiment = running_experiment(project, only_count_matured_users=True)
    yesterday = timezone.now() - timedelta(days=1)
    send(
        project,
        [
            exposure(experiment, "mature", "control", at(1)),
            exposure(experiment, "young", "test", at(1)),
            exposure(experiment, "young", "test", yesterday),  # the last exposure is what matures
            event("purchase", "mature", at(2), amount=50),
            event("purchase", "young", at(2), amount=75),
        ],
    )
    metric = mean_metric(
        math="sum", math_property="amount", conversion_window=7, conversion_window_unit="day"
    )
    result = statistics(experiment, metric)
    assert (result["control"].number_of_samples, result["control"].sum) == (1, 50)
    assert result["test"].number_of_samples == 0
    experiment.only_count_matured_users = False
    assert statistics(experiment, metric)["test"].number_of_samples == 1


def test_conversion_window_is_measured_from_the_last_exposure_b10(project):
    experiment = running_experiment(project)
    send(
        project,
        [
            exposure(experiment, "u1", "control", at(1)),
            exposure(experiment, "u1", "control", at(4)),
            event("purchase", "u1", at(4, hours=12), amount=25),
            event("purchase", "u1", at(5, hours=1), amount=1000),  # 25 h after the last exposure
        ],
    )
    metric = mean_metric(
        math="sum", math_property="amount", conversion_window=1, conversion_window_unit="day"
    )
    result = statistics(experiment, metric)
    assert (result["control"].number_of_samples, result["control"].sum) == (1, 25)


def test_as_of_closes_the_window(project):
    experiment = running_experiment(project)
    send(
        project,
        [
            exposure(experiment, "early", "control", at(1)),
            exposure(experiment, "late", "control", at(5)),
            event("purchase", "early", at(2)),
            event("purchase", "early", at(6)),
        ],
    )
    result = statistics(experiment, mean_metric(), as_of=at(3))
    assert (result["control"].number_of_samples, result["control"].sum) == (1, 1)


def test_property_filters_on_metric_events(project):
    experiment = running_experiment(project)
    send(
        project,
        [
            exposure(experiment, "u1", "control", at(1)),
            event("purchase", "u1", at(2), plan="pro", amount=10),
            event("purchase", "u1", at(2), plan="free", amount=20),
            event("purchase", "u1", at(2), plan="Pro plus", amount=40),
            event("purchase", "u1", at(2), amount=80),
        ],
    )

    def total(*filters):
        metric = mean_metric(math="sum", math_property="amount")
        metric["source"]["properties"] = [{"type": "event", **item} for item in filters]
        return statistics(experiment, metric)["control"].sum

    assert total({"key": "plan", "value": ["pro"], "operator": "exact"}) == 10
    assert total({"key": "plan", "value": "pro", "operator": "is_not"}) == 140
    assert total({"key": "plan", "value": "PRO", "operator": "icontains"}) == 50
    assert total({"key": "plan", "value": "pro", "operator": "not_icontains"}) == 100
    assert total({"key": "plan", "operator": "is_not_set"}) == 80
    assert total({"key": "amount", "value": 20, "operator": "gte"}) == 140
    assert total({"key": "plan", "value": "100%_", "operator": "icontains"}) == 0


def test_funnel_b11_and_step_counts(project):
    experiment = running_experiment(project)
    events = expose_users(experiment, "control", 15, "c") + expose_users(experiment, "test", 15, "t")
    events += [event("purchase", f"c{index}", at(2)) for index in range(8)]
    events += [event("purchase", f"t{index}", at(2)) for index in range(10)]
    send(project, events)
    metric = {
        "kind": "ExperimentMetric",
        "metric_type": "funnel",
        "series": [{"kind": "EventsNode", "event": "purchase"}],
    }
    result = statistics(experiment, metric)
    assert (result["control"].number_of_samples, result["control"].sum, result["control"].step_counts) == (
        15,
        8,
        [8],
    )
    assert (result["test"].number_of_samples, result["test"].sum, result["test"].step_counts) == (
        15,
        10,
        [10],
    )


def test_ordered_funnel_steps_windows_and_restarts(project):
    experiment = running_experiment(project)
    send(
        project,
        [
            # a: full funnel in order.
            exposure(experiment, "a", "control", at(1)),
            event("view", "a", at(1, hours=1)),
            event("buy", "a", at(1, hours=2)),
            # b: bought before viewing: only step 1.
            exposure(experiment, "b", "control", at(1)),
            event("buy", "b", at(1, hours=1)),
            event("view", "b", at(1, hours=2)),
            # c: the purchase is outside the 1-day window of the first exposure, but a second
            # exposure restarts the path.
            exposure(experiment, "c", "control", at(1)),
            event("view", "c", at(1, hours=1)),
            exposure(experiment, "c", "control", at(3)),
            event("view", "c", at(3, hours=1)),
            event("buy", "c", at(3, hours=2)),
            # d: view and buy after the window.
            exposure(experiment, "d", "control", at(1)),
            event("view", "d", at(2, hours=1)),
            event("buy", "d", at(2, hours=2)),
            # e: exposure and view at the same instant count.
            exposure(experiment, "e", "control", at(1)),
            event("view", "e", at(1)),
        ],
    )
    metric = {
        "kind": "ExperimentMetric",
        "metric_type": "funnel",
        "series": [{"kind": "EventsNode", "event": "view"}, {"kind": "EventsNode", "event": "buy"}],
        "conversion_window": 1,
        "conversion_window_unit": "day",
    }
    control = statistics(experiment, metric)["control"]
    assert control.number_of_samples == 5
    assert control.step_counts == [4, 2]
    assert control.sum == control.sum_squares == 2


def test_one_event_cannot_complete_two_steps(project):
    experiment = running_experiment(project)
    send(project, [exposure(experiment, "a", "control", at(1)), event("view", "a", at(2))])
    metric = {
        "kind": "ExperimentMetric",
        "metric_type": "funnel",
        "series": [{"kind": "EventsNode", "event": "view"}, {"kind": "EventsNode", "event": "view"}],
    }
    assert statistics(experiment, metric)["control"].step_counts == [1, 0]


def test_ratio_b12(project):
    experiment = running_experiment(project)
    events = []
    for variant, purchases in (("control", [(40, 3), (80, 6)]), ("test", [(100, 7), (60, 5)])):
        for index, (total, count) in enumerate(purchases):
            user = f"{variant}{index}"
            events.append(exposure(experiment, user, variant, at(1)))
            events += [event("purchase", user, at(2), amount=total / count) for _ in range(count)]
        events += [exposure(experiment, f"{variant}-idle{index}", variant, at(1)) for index in range(8)]
    send(project, events)
    metric = {
        "kind": "ExperimentMetric",
        "metric_type": "ratio",
        "numerator": {"kind": "EventsNode", "event": "purchase", "math": "sum", "math_property": "amount"},
        "denominator": {"kind": "EventsNode", "event": "purchase"},
    }
    result = statistics(experiment, metric)
    control, test = result["control"], result["test"]
    assert control.number_of_samples == test.number_of_samples == 10
    assert (control.sum, control.denominator_sum) == pytest.approx((120, 9))
    assert (test.sum, test.denominator_sum) == pytest.approx((160, 12))
    assert control.denominator_sum_squares == 9 + 36
    assert control.numerator_denominator_sum_product == pytest.approx(40 * 3 + 80 * 6)
    assert control.sum_squares == pytest.approx(40**2 + 80**2)


def test_custom_exposure_event_reads_the_feature_property(project):
    experiment = running_experiment(project)
    experiment.exposure_criteria = {
        "exposure_config": {"kind": "ExperimentEventExposureConfig", "event": "$pageview", "properties": []}
    }
    flag_property = f"$feature/{experiment.feature_flag.key}"
    send(
        project,
        [
            event("$pageview", "u1", at(1), **{flag_property: "test"}),
            event("$pageview", "u2", at(1)),
            exposure(experiment, "u3", "control", at(1)),  # the default exposure no longer counts
        ],
    )
    result = statistics(experiment, mean_metric("$pageview"))
    assert (result["control"].number_of_samples, result["test"].number_of_samples) == (0, 1)
    assert result["test"].sum == 1


def test_group_aggregated_flag_uses_the_group_key(project):
    GroupTypeMappingFactory(project=project, group_type="company", group_type_index=0)
    experiment = running_experiment(project)
    experiment.feature_flag.filters = {**experiment.feature_flag.filters, "aggregation_group_type_index": 0}
    experiment.feature_flag.save()
    groups = {"$groups": {"company": "acme"}}
    send(
        project,
        [
            exposure(experiment, "alice", "test", at(1), **groups),
            exposure(experiment, "bob", "test", at(1), **groups),
            event("purchase", "carol", at(2), **groups),
            event("purchase", "dave", at(2)),
        ],
    )
    result = statistics(experiment, mean_metric())
    assert (result["test"].number_of_samples, result["test"].sum) == (1, 1)


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (
            {"kind": "ExperimentMetric", "metric_type": "mean", "source": {"kind": "ActionsNode", "id": 1}},
            "Actions",
        ),
        (
            {
                "kind": "ExperimentMetric",
                "metric_type": "mean",
                "source": {"kind": "EventsNode", "event": "x", "math": "hogql"},
            },
            "HogQL",
        ),
        (
            {
                "kind": "ExperimentMetric",
                "metric_type": "mean",
                "source": {"kind": "EventsNode", "event": "x", "math": "sum"},
            },
            "math_property",
        ),
        (
            {
                "kind": "ExperimentMetric",
                "metric_type": "mean",
                "source": {
                    "kind": "EventsNode",
                    "event": "x",
                    "properties": [{"key": "a", "operator": "regex", "value": "(a+)+"}],
                },
            },
            "not supported",
        ),
        ({"kind": "ExperimentMetric", "metric_type": "mean"}, "source"),
        (
            {
                "kind": "ExperimentMetric",
                "metric_type": "funnel",
                "series": [{"kind": "EventsNode", "event": "x"}],
                "funnel_order_type": "unordered",
            },
            "ordered",
        ),
        (
            {
                "kind": "ExperimentMetric",
                "metric_type": "mean",
                "source": {"kind": "EventsNode", "event": "x"},
                "lower_bound_percentile": 2,
            },
            "between 0 and 1",
        ),
        (
            {
                "kind": "ExperimentMetric",
                "metric_type": "mean",
                "source": {"kind": "EventsNode", "event": "x"},
                "conversion_window": -1,
            },
            "conversion_window",
        ),
    ],
)
def test_unsupported_or_malformed_metrics_are_validation_errors(project, metric, message):
    experiment = running_experiment(project)
    with pytest.raises(ValidationError) as raised:
        statistics(experiment, metric)
    assert message in str(raised.value.detail)


def test_draft_has_no_results(project):
    experiment = running_experiment(project)
    experiment.start_date = None
    with pytest.raises(ValidationError, match="not been started"):
        statistics(experiment, mean_metric())


def covariates(row) -> tuple:
    return (row.sum, row.covariate_sum, row.covariate_sum_squares, row.covariate_sum_product)


def test_cuped_mean_covariates_b16(project):
    experiment = running_experiment(project, stats_config={"cuped": {"enabled": True, "lookback_days": 7}})
    events = []
    for user, variant, pre, post in (
        ("c1", "control", 3, 10),
        ("c2", "control", 4, 20),
        ("t1", "test", 5, 30),
        ("t2", "test", 6, 40),
    ):
        events.append(exposure(experiment, user, variant, at(1)))
        events.append(
            event("purchase", user, at(-3), amount=pre)
        )  # before the experiment started: still counts
        events.append(event("purchase", user, at(-9), amount=1000))  # outside the 7-day lookback
        events.append(event("purchase", user, at(2), amount=post))
    send(project, events)
    result = statistics(experiment, mean_metric(math="sum", math_property="amount"))
    assert covariates(result["control"]) == (30, 7, 25, 110)
    assert covariates(result["test"]) == (70, 11, 61, 390)


def test_cuped_window_is_anchored_on_the_first_exposure_b17(project):
    experiment = running_experiment(project, stats_config={"cuped": {"enabled": True, "lookback_days": 2}})
    send(
        project,
        [
            exposure(experiment, "c1", "control", at(5)),
            event("purchase", "c1", at(4), amount=5),
            event("purchase", "c1", at(2), amount=100),  # 3 days before exposure
            event("purchase", "c1", at(6), amount=7),
            exposure(experiment, "t1", "test", at(5)),
            exposure(experiment, "t1", "test", at(9)),
            event("purchase", "t1", at(4), amount=6),
            event("purchase", "t1", at(8), amount=8),  # before the second exposure: still post-exposure
        ],
    )
    result = statistics(experiment, mean_metric(math="sum", math_property="amount"))
    assert covariates(result["control"]) == (7, 5, 25, 35)
    assert covariates(result["test"]) == (8, 6, 36, 48)


def test_cuped_funnel_covariate_is_the_last_step_before_exposure_b18(project):
    experiment = running_experiment(project, stats_config={"cuped": {"enabled": True}})
    events = []
    for user, variant, did_before, converts in (
        ("c1", "control", True, True),
        ("c2", "control", False, True),
        ("c3", "control", False, False),
        ("t1", "test", True, True),
        ("t2", "test", True, False),
    ):
        events.append(exposure(experiment, user, variant, at(20)))
        if did_before:
            events.append(event("purchase", user, at(10)))  # 10 days before: inside the default 14
        if converts:
            events.append(event("purchase", user, at(21)))
    send(project, events)
    metric = {
        "kind": "ExperimentMetric",
        "metric_type": "funnel",
        "series": [{"kind": "EventsNode", "event": "purchase"}],
    }
    result = statistics(experiment, metric)
    assert covariates(result["control"]) == (2, 1, 1, 1)
    assert covariates(result["test"]) == (1, 2, 2, 1)


def test_no_covariates_without_cuped_or_with_a_threshold(project):
    experiment = running_experiment(project)
    send(project, [exposure(experiment, "u1", "control", at(1)), event("purchase", "u1", at(0), amount=4)])
    assert statistics(experiment, mean_metric())["control"].covariate_sum is None
    experiment.stats_config = {"cuped": {"enabled": True}}
    assert statistics(experiment, mean_metric(threshold=1))["control"].covariate_sum is None
    assert statistics(experiment, mean_metric())["control"].covariate_sum == 1


def retention_metric(
    start: int, end: int, unit: str = "day", handling: str = "first_seen", same_event=False
) -> dict:
    return {
        "kind": "ExperimentMetric",
        "metric_type": "retention",
        "start_event": {"kind": "EventsNode", "event": "signup"},
        "completion_event": {"kind": "EventsNode", "event": "signup" if same_event else "return"},
        "retention_window_start": start,
        "retention_window_end": end,
        "retention_window_unit": unit,
        "start_handling": handling,
    }


def test_retention_counts_starters_and_returns_b14(project):
    experiment = running_experiment(project)
    events = []
    for variant, exposed, started, returned in (("control", 10, 6, 4), ("test", 10, 8, 6)):
        for index in range(exposed):
            user = f"{variant}{index}"
            events.append(exposure(experiment, user, variant, at(1)))
            if index < started:
                events.append(event("signup", user, at(1, hours=2)))
            if index < returned:
                events.append(event("return", user, at(4)))
    send(project, events)
    result = statistics(experiment, retention_metric(1, 7))
    control, test = result["control"], result["test"]
    assert (control.number_of_samples, control.sum, control.sum_squares) == (6, 4, 4)
    assert (
        control.denominator_sum,
        control.denominator_sum_squares,
        control.numerator_denominator_sum_product,
    ) == (6, 6, 4)
    assert (test.number_of_samples, test.sum, test.denominator_sum) == (8, 6, 8)


def test_retention_window_is_inclusive_in_calendar_days_b15(project):
    experiment = running_experiment(project)
    events = []
    for variant, days in (("control", [5, 7, 10, 13, 14, 20, None]), ("test", [6, 7, 9, 12, 13, 14, None])):
        for index, day in enumerate(days):
            user = f"{variant}{index}"
            events.append(exposure(experiment, user, variant, at(1)))
            events.append(event("signup", user, at(1, hours=20)))
            if day is not None:
                events.append(
                    event("return", user, at(1 + day, hours=1))
                )  # earlier in the day than the start
    send(project, events)
    result = statistics(experiment, retention_metric(7, 14))
    assert (result["control"].number_of_samples, result["control"].sum) == (7, 4)
    assert (result["test"].number_of_samples, result["test"].sum) == (7, 5)


def test_retention_start_handling_and_a_start_never_completes_itself(project):
    experiment = running_experiment(project)
    send(
        project,
        [
            exposure(experiment, "once", "control", at(1)),
            event("signup", "once", at(2)),
            exposure(experiment, "twice", "control", at(1)),
            event("signup", "twice", at(0)),  # before exposure: not a start
            event("signup", "twice", at(2)),
            event("signup", "twice", at(3)),
        ],
    )
    first = statistics(experiment, retention_metric(1, 1, same_event=True))["control"]
    assert (first.number_of_samples, first.sum) == (2, 1)
    last = statistics(experiment, retention_metric(1, 1, handling="last_seen", same_event=True))["control"]
    assert (last.number_of_samples, last.sum) == (2, 0)
    same_day = statistics(experiment, retention_metric(0, 0, same_event=True))["control"]
    assert same_day.sum == 0


def test_retention_hours_and_weeks(project):
    experiment = running_experiment(project)
    send(
        project,
        [
            exposure(experiment, "u1", "control", at(1)),
            event("signup", "u1", at(1, hours=1)),
            event("return", "u1", at(1, hours=3)),
            exposure(experiment, "u2", "test", at(1)),
            event("signup", "u2", at(1, hours=1)),
            event("return", "u2", at(14, hours=2)),  # 13 days 1 hour later: weeks are not truncated
        ],
    )
    hours = statistics(experiment, retention_metric(2, 2, unit="hour"))
    assert (hours["control"].sum, hours["test"].sum) == (1, 0)
    weeks = statistics(experiment, retention_metric(1, 2, unit="week"))
    assert (weeks["control"].sum, weeks["test"].sum) == (0, 1)


def test_retention_window_bounds_are_validated(project):
    experiment = running_experiment(project)
    with pytest.raises(ValidationError, match="retention_window_start"):
        statistics(experiment, retention_metric(5, 2))
    with pytest.raises(ValidationError, match="start_handling"):
        statistics(experiment, retention_metric(1, 2, handling="middle"))


def test_strict_funnel_needs_each_step_to_be_the_next_funnel_event(project):
    experiment = running_experiment(project)
    send(
        project,
        [
            # a: exposure, view, buy.
            exposure(experiment, "a", "control", at(1)),
            event("view", "a", at(1, hours=1)),
            event("buy", "a", at(1, hours=2)),
            # b: an event outside the funnel between steps does not matter.
            exposure(experiment, "b", "control", at(1)),
            event("view", "b", at(1, hours=1)),
            event("scroll", "b", at(1, hours=2)),
            event("buy", "b", at(1, hours=3)),
            # c: a repeated view ends the path after step 1.
            exposure(experiment, "c", "control", at(1)),
            event("view", "c", at(1, hours=1)),
            event("view", "c", at(1, hours=2)),
            event("buy", "c", at(1, hours=3)),
            # d: a purchase first ends the path at step 0.
            exposure(experiment, "d", "control", at(1)),
            event("buy", "d", at(1, hours=1)),
            event("view", "d", at(1, hours=2)),
            # e: another exposure breaks the first path and starts a new one.
            exposure(experiment, "e", "control", at(1)),
            event("view", "e", at(1, hours=1)),
            exposure(experiment, "e", "control", at(1, hours=2)),
            event("view", "e", at(1, hours=3)),
            event("buy", "e", at(1, hours=4)),
            # f: exposure and view at the same instant, in step order.
            exposure(experiment, "f", "control", at(1)),
            event("view", "f", at(1)),
        ],
    )
    series = [{"kind": "EventsNode", "event": "view"}, {"kind": "EventsNode", "event": "buy"}]
    strict = {
        "kind": "ExperimentMetric",
        "metric_type": "funnel",
        "series": series,
        "funnel_order_type": "strict",
    }
    ordered = {**strict, "funnel_order_type": "ordered"}
    assert statistics(experiment, strict)["control"].step_counts == [5, 3]
    assert statistics(experiment, ordered)["control"].step_counts == [6, 4]

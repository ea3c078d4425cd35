"""compare_variants as the engine uses it: response shape, validation failures, the cases where PostHog
gives no statistics, hostile numbers, and stats_config resolution."""

import math

import pytest

from results.statistics import (
    UNABLE_TO_CALCULATE_MESSAGE,
    DifferenceType,
    ExperimentStatisticsError,
    StatsConfig,
    StatsMethod,
    VariantStatistics,
    compare_variants,
    resolve_stats_config,
)

BAYESIAN = StatsConfig()
FREQUENTIST = StatsConfig(method=StatsMethod.FREQUENTIST)
BOTH_METHODS = pytest.mark.parametrize("config", [BAYESIAN, FREQUENTIST], ids=["bayesian", "frequentist"])
STATISTICS_FIELDS = {
    StatsMethod.BAYESIAN: ("chance_to_win", "credible_interval", "significant"),
    StatsMethod.FREQUENTIST: ("p_value", "confidence_interval", "significant"),
}


def mean(key, n, total, squares, **extra):
    return VariantStatistics(key=key, number_of_samples=n, sum=total, sum_squares=squares, **extra)


def funnel(key, n, conversions):
    return VariantStatistics(
        key=key, number_of_samples=n, sum=conversions, sum_squares=conversions, step_counts=[conversions]
    )


def has_statistics(result, config):
    fields = STATISTICS_FIELDS[config.method]
    present = [result[field] is not None for field in fields]
    assert all(present) or not any(present), result
    return all(present)


def compare(baseline, treatment, metric_type, config):
    return compare_variants(baseline=baseline, treatments=[treatment], metric_type=metric_type, config=config)


def test_response_has_posthogs_shape_for_a_bayesian_funnel():
    response = compare(funnel("control", 1000, 100), funnel("test", 1000, 110), "funnel", BAYESIAN)
    assert response["baseline"] == {
        "key": "control",
        "number_of_samples": 1000,
        "sum": 100,
        "sum_squares": 100,
        "step_counts": [100],
        "validation_failures": [],
    }
    (result,) = response["variant_results"]
    assert set(result) == {
        "key",
        "method",
        "number_of_samples",
        "sum",
        "sum_squares",
        "step_counts",
        "validation_failures",
        "chance_to_win",
        "credible_interval",
        "significant",
    }
    assert result["method"] == "bayesian"
    assert result["key"] == "test"
    assert isinstance(result["credible_interval"], list)


def test_frequentist_response_carries_p_value_and_confidence_interval():
    (result,) = compare(mean("control", 100, 500, 2550), mean("test", 100, 550, 3050), "mean", FREQUENTIST)[
        "variant_results"
    ]
    assert result["method"] == "frequentist"
    assert {"p_value", "confidence_interval", "significant"} <= set(result)
    assert "chance_to_win" not in result
    assert result["step_counts"] is None


def test_ratio_and_covariate_sums_are_echoed_only_when_present():
    ratio = VariantStatistics(
        "control",
        100,
        50,
        60,
        denominator_sum=200,
        denominator_sum_squares=500,
        numerator_denominator_sum_product=110,
    )
    baseline = compare(ratio, ratio, "ratio", BAYESIAN)["baseline"]
    assert baseline["denominator_sum"] == 200
    assert baseline["numerator_denominator_sum_product"] == 110
    assert "covariate_sum" not in baseline


def test_baseline_with_too_few_exposures_blocks_every_variant():
    response = compare_variants(
        baseline=mean("control", 49, 490, 5000),
        treatments=[mean("a", 500, 5000, 60000), mean("b", 500, 5500, 70000)],
        metric_type="mean",
        config=BAYESIAN,
    )
    assert response["baseline"]["validation_failures"] == ["not-enough-exposures"]
    for result in response["variant_results"]:
        assert result["validation_failures"] == []
        assert not has_statistics(result, BAYESIAN)


def test_a_thin_variant_gets_no_statistics_while_the_others_do():
    response = compare_variants(
        baseline=mean("control", 500, 5000, 60000),
        treatments=[mean("thin", 10, 100, 1200), mean("fine", 500, 5250, 66000)],
        metric_type="mean",
        config=FREQUENTIST,
    )
    thin, fine = response["variant_results"]
    assert thin["validation_failures"] == ["not-enough-exposures"]
    assert not has_statistics(thin, FREQUENTIST)
    assert has_statistics(fine, FREQUENTIST)


def test_funnel_with_fewer_than_five_conversions_is_not_enough_metric_data():
    response = compare(funnel("control", 1000, 100), funnel("test", 1000, 4), "funnel", BAYESIAN)
    assert response["variant_results"][0]["validation_failures"] == ["not-enough-metric-data"]
    assert not has_statistics(response["variant_results"][0], BAYESIAN)


def test_retention_with_fewer_than_five_retained_is_not_enough_metric_data():
    response = compare(mean("control", 100, 4, 4), mean("test", 100, 30, 30), "retention", FREQUENTIST)
    assert response["baseline"]["validation_failures"] == ["not-enough-metric-data"]


def test_baseline_without_conversions_reports_every_failure_it_has():
    response = compare(funnel("control", 10, 0), funnel("test", 1000, 100), "funnel", BAYESIAN)
    assert response["baseline"]["validation_failures"] == [
        "not-enough-exposures",
        "not-enough-metric-data",
        "baseline-mean-is-zero",
    ]


def test_a_mean_variant_may_have_a_zero_sum_only_the_baseline_may_not():
    response = compare(mean("control", 100, 50, 60), mean("test", 100, 0, 50), "mean", FREQUENTIST)
    assert response["variant_results"][0]["validation_failures"] == []
    assert has_statistics(response["variant_results"][0], FREQUENTIST)


def test_funnel_converting_everyone_has_no_bayesian_result_but_a_frequentist_one():
    control, everyone = funnel("control", 200, 100), funnel("test", 200, 200)
    assert not has_statistics(compare(control, everyone, "funnel", BAYESIAN)["variant_results"][0], BAYESIAN)
    frequentist = compare(control, everyone, "funnel", FREQUENTIST)["variant_results"][0]
    assert has_statistics(frequentist, FREQUENTIST)
    assert frequentist["significant"] is True


def test_funnel_with_four_failures_has_no_bayesian_result():
    result = compare(funnel("control", 200, 100), funnel("test", 200, 196), "funnel", BAYESIAN)
    assert not has_statistics(result["variant_results"][0], BAYESIAN)


def test_negative_baseline_mean_relative_is_frequentist_only():
    control, test = mean("control", 100, -500, 3500), mean("test", 100, -400, 2500)
    assert not has_statistics(compare(control, test, "mean", BAYESIAN)["variant_results"][0], BAYESIAN)
    frequentist = compare(control, test, "mean", FREQUENTIST)["variant_results"][0]
    assert has_statistics(frequentist, FREQUENTIST)
    # −4 against −5 is a relative change of −20% (divided by the negative baseline).
    low, high = frequentist["confidence_interval"]
    assert math.isclose((low + high) / 2, -0.2)


def test_negative_baseline_mean_absolute_works_in_both_methods():
    control, test = mean("control", 100, -500, 3500), mean("test", 100, -400, 2500)
    absolute = StatsConfig(difference_type=DifferenceType.ABSOLUTE)
    result = compare(control, test, "mean", absolute)["variant_results"][0]
    low, high = result["credible_interval"]
    assert math.isclose((low + high) / 2, 1.0)
    assert result["chance_to_win"] > 0.98
    assert result["significant"] is True


@BOTH_METHODS
def test_zero_variance_in_both_groups_gives_no_statistics(config):
    response = compare(mean("control", 100, 200, 400), mean("test", 100, 300, 900), "mean", config)
    assert not has_statistics(response["variant_results"][0], config)


@BOTH_METHODS
def test_zero_variance_in_one_group_still_tests(config):
    response = compare(mean("control", 100, 200, 400), mean("test", 100, 300, 1000), "mean", config)
    assert has_statistics(response["variant_results"][0], config)


@BOTH_METHODS
@pytest.mark.parametrize(
    "treatment",
    [
        mean("test", 100, math.nan, 10),
        mean("test", 100, math.inf, math.inf),
        mean("test", 100, 50, -1),
        mean("test", 100, 1e200, 1e300),
        mean("test", 100, 10, 1e308),
    ],
    ids=["nan", "inf", "impossible-squares", "square-overflows", "huge-variance"],
)
def test_hostile_sums_give_no_statistics_and_never_raise(config, treatment):
    response = compare(mean("control", 100, 500, 2600), treatment, "mean", config)
    result = response["variant_results"][0]
    if has_statistics(result, config):
        values = [result[STATISTICS_FIELDS[config.method][0]], *result[STATISTICS_FIELDS[config.method][1]]]
        assert all(math.isfinite(value) for value in values)


@BOTH_METHODS
def test_impossible_funnel_counts_give_no_statistics(config):
    for conversions in (-5, 1001):
        result = compare(funnel("control", 1000, 100), funnel("test", 1000, conversions), "funnel", config)
        assert not has_statistics(result["variant_results"][0], config)


@BOTH_METHODS
def test_ratio_without_denominator_sums_gives_no_statistics(config):
    response = compare(mean("control", 100, 50, 60), mean("test", 100, 60, 70), "ratio", config)
    assert not has_statistics(response["variant_results"][0], config)


@BOTH_METHODS
def test_ratio_with_zero_denominator_gives_no_statistics(config):
    zero = {"denominator_sum": 0, "denominator_sum_squares": 0, "numerator_denominator_sum_product": 0}
    response = compare(
        mean("control", 100, 50, 60, **zero), mean("test", 100, 60, 70, **zero), "ratio", config
    )
    assert not has_statistics(response["variant_results"][0], config)


def test_tiny_samples_pass_the_statistics_but_not_validation():
    # n = 1 gives a variance of 0 rather than a division by zero; validation still withholds results.
    response = compare(mean("control", 1, 5, 25), mean("test", 1, 7, 49), "mean", FREQUENTIST)
    assert response["baseline"]["validation_failures"] == ["not-enough-exposures"]
    assert response["variant_results"][0]["p_value"] is None


def test_no_treatments_returns_only_the_baseline():
    response = compare_variants(
        baseline=mean("control", 100, 50, 60), treatments=[], metric_type="mean", config=BAYESIAN
    )
    assert response["variant_results"] == []
    assert response["baseline"]["key"] == "control"


@pytest.mark.parametrize("ci_level", [0.0, 1.0])
def test_credible_level_of_exactly_zero_or_one_is_a_configuration_error(ci_level):
    config = resolve_stats_config({"bayesian": {"ci_level": ci_level}})
    assert config.ci_level == ci_level
    with pytest.raises(ExperimentStatisticsError) as raised:
        compare(mean("control", 100, 500, 2600), mean("test", 100, 550, 3100), "mean", config)
    assert str(raised.value) == UNABLE_TO_CALCULATE_MESSAGE


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_alpha_of_exactly_zero_or_one_is_a_configuration_error(alpha):
    config = resolve_stats_config({"method": "frequentist", "frequentist": {"alpha": alpha}})
    with pytest.raises(ExperimentStatisticsError):
        compare(mean("control", 100, 500, 2600), mean("test", 100, 550, 3100), "mean", config)


def test_extreme_but_valid_credible_levels_bracket_the_estimate():
    baseline, treatment = mean("control", 100, 500, 2600), mean("test", 100, 550, 3100)
    narrow = compare(baseline, treatment, "mean", StatsConfig(ci_level=0.01))["variant_results"][0]
    wide = compare(baseline, treatment, "mean", StatsConfig(ci_level=0.999999))["variant_results"][0]
    assert (
        wide["credible_interval"][0] < narrow["credible_interval"][0] < 0.1 < narrow["credible_interval"][1]
    )
    assert narrow["credible_interval"][1] < wide["credible_interval"][1]
    # At a 1% level nearly any lean counts as "significant"; at 99.9999% this one does not.
    assert narrow["significant"] is True
    assert wide["significant"] is False


def test_unknown_metric_type_is_rejected():
    with pytest.raises(ValueError):
        compare(mean("control", 100, 50, 60), mean("test", 100, 60, 70), "histogram", BAYESIAN)


def test_cuped_needs_the_covariates_of_both_groups():
    covariates = {"covariate_sum": 30, "covariate_sum_squares": 30, "covariate_sum_product": 26}
    cuped = StatsConfig(cuped_enabled=True)
    plain = compare(funnel("control", 60, 36), funnel("test", 60, 40), "funnel", BAYESIAN)["variant_results"][
        0
    ]
    half = compare(
        VariantStatistics("control", 60, 36, 36, step_counts=[36], **covariates),
        funnel("test", 60, 40),
        "funnel",
        cuped,
    )["variant_results"][0]
    assert half["chance_to_win"] == plain["chance_to_win"]


def test_cuped_is_never_applied_to_ratio_metrics():
    extra = {
        "denominator_sum": 100,
        "denominator_sum_squares": 100,
        "numerator_denominator_sum_product": 50,
        "covariate_sum": 40,
        "covariate_sum_squares": 40,
        "covariate_sum_product": 30,
    }
    control = VariantStatistics("control", 100, 50, 50, **extra)
    treatment = VariantStatistics("test", 100, 60, 60, **{**extra, "numerator_denominator_sum_product": 60})
    with_cuped = compare(control, treatment, "ratio", StatsConfig(cuped_enabled=True))["variant_results"][0]
    without = compare(control, treatment, "ratio", BAYESIAN)["variant_results"][0]
    assert with_cuped["credible_interval"] == without["credible_interval"]


class TestResolveStatsConfig:
    def test_defaults(self):
        assert resolve_stats_config(None) == StatsConfig()
        assert resolve_stats_config({}) == StatsConfig()

    @pytest.mark.parametrize("hostile", ["frequentist", 42, ["method"], {"method": ["frequentist"]}])
    def test_non_objects_and_odd_values_fall_back(self, hostile):
        assert resolve_stats_config(hostile).method is StatsMethod.BAYESIAN

    def test_method_and_levels(self):
        config = resolve_stats_config(
            {"method": "frequentist", "bayesian": {"ci_level": 0.9}, "frequentist": {"alpha": 0.1}}
        )
        assert (config.method, config.ci_level, config.alpha) == (StatsMethod.FREQUENTIST, 0.9, 0.1)

    @pytest.mark.parametrize("level", [1.5, -0.1, "0.9", True, None, math.nan, math.inf])
    def test_invalid_levels_fall_back(self, level):
        config = resolve_stats_config({"bayesian": {"ci_level": level}, "frequentist": {"alpha": level}})
        assert (config.ci_level, config.alpha) == (0.95, 0.05)

    @pytest.mark.parametrize(
        ("spelling", "expected"),
        [
            ("ABSOLUTE", DifferenceType.ABSOLUTE),
            ("absolute", DifferenceType.RELATIVE),
            ("RELATIVE", DifferenceType.RELATIVE),
        ],
    )
    def test_difference_type_is_parsed_by_enum_name_from_the_methods_section(self, spelling, expected):
        assert resolve_stats_config({"bayesian": {"difference_type": spelling}}).difference_type is expected
        frequentist = resolve_stats_config(
            {"method": "frequentist", "frequentist": {"difference_type": spelling}}
        )
        assert frequentist.difference_type is expected
        # The other method's section does not count.
        assert (
            resolve_stats_config(
                {"method": "frequentist", "bayesian": {"difference_type": spelling}}
            ).difference_type
            is DifferenceType.RELATIVE
        )

    def test_sequential_experiment_value_beats_team_default(self):
        assert resolve_stats_config({}, default_sequential_testing_enabled=True).sequential_testing_enabled
        explicit_off = resolve_stats_config(
            {"frequentist": {"sequential_testing_enabled": False}}, default_sequential_testing_enabled=True
        )
        assert explicit_off.sequential_testing_enabled is False

    @pytest.mark.parametrize(
        ("experiment", "team", "expected"),
        [
            (2000, 3000, 2000),
            (None, 3000, 3000),
            (None, None, 5000),
            (0, 3000, 3000),
            (2e9, None, 5000),
            ("x", 7, 7),
        ],
    )
    def test_sequential_tuning_parameter_falls_through_invalid_values(self, experiment, team, expected):
        config = resolve_stats_config(
            {"frequentist": {"sequential_tuning_parameter": experiment}},
            default_sequential_tuning_parameter=team,
        )
        assert config.sequential_tuning_parameter == expected

    def test_cuped_explicit_false_beats_team_default(self):
        assert resolve_stats_config({}, default_cuped_enabled=True).cuped_enabled is True
        assert (
            resolve_stats_config({"cuped": {"enabled": False}}, default_cuped_enabled=True).cuped_enabled
            is False
        )

    @pytest.mark.parametrize(
        ("experiment", "team", "expected"),
        [
            (7, None, 7),
            (45, None, 30),
            (0, None, 1),
            ("10", None, 10),
            (" +10 ", None, 10),
            ("٣", None, 3),
            (None, 21, 21),
            ("soon", 21, 21),
            ("²", 21, 21),
            ("+-5", 21, 21),
            ("--3", 21, 21),
            ("9" * 5000, 21, 21),
            (None, None, 14),
        ],
    )
    def test_cuped_lookback_is_clamped_and_falls_through_unparsable_values(self, experiment, team, expected):
        config = resolve_stats_config(
            {"cuped": {"lookback_days": experiment}}, default_cuped_lookback_days=team
        )
        assert config.cuped_lookback_days == expected

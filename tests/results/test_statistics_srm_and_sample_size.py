"""SRM chi-square check (spec §6, vectors A26–A32) and the running-time calculator (§7, A33–A44)."""

import math

import pytest

from results.statistics import (
    SRM_P_VALUE_THRESHOLD,
    CalculatorMetricType,
    VariantStatistics,
    baseline_value_from_stats,
    ratio_variance_from_stats,
    recommended_running_time_days,
    recommended_sample_size,
    remaining_running_days,
    resolve_minimum_detectable_effect,
    sample_ratio_mismatch,
    variance_for,
)

EVEN_SPLIT = {"control": 50, "test": 50}


def test_a26_perfect_split():
    result = sample_ratio_mismatch(
        observed_counts={"control": 50, "test": 50}, rollout_percentages=EVEN_SPLIT
    )
    assert result == {"expected": {"control": 50.0, "test": 50.0}, "p_value": 1.0}


def test_a27_skewed_split():
    result = sample_ratio_mismatch(
        observed_counts={"control": 90, "test": 10}, rollout_percentages=EVEN_SPLIT
    )
    assert result["expected"] == {"control": 50.0, "test": 50.0}
    assert result["p_value"] < SRM_P_VALUE_THRESHOLD
    assert math.isclose(result["p_value"], 1.2441921e-15, rel_tol=1e-7)


def test_a28_fewer_than_100_exposures_gives_no_check():
    assert (
        sample_ratio_mismatch(observed_counts={"control": 40, "test": 40}, rollout_percentages=EVEN_SPLIT)
        is None
    )


def test_a29_holdout_is_neither_expected_nor_observed():
    # The flag's variants stay 50/50; the holdout's users carry no analysed variant key.
    result = sample_ratio_mismatch(
        observed_counts={"control": 50, "test": 50, "holdout-7": 25}, rollout_percentages=EVEN_SPLIT
    )
    assert result == {"expected": {"control": 50.0, "test": 50.0}, "p_value": 1.0}


def test_a30_zero_percent_variant_is_left_out():
    result = sample_ratio_mismatch(
        observed_counts={"control": 50, "test": 50, "disabled": 1},
        rollout_percentages={"control": 50, "test": 50, "disabled": 0},
    )
    assert result["expected"] == {"control": 50.0, "test": 50.0}
    assert round(result["p_value"] - 1.0, 2) == 0


def test_a31_everyone_in_one_variant():
    result = sample_ratio_mismatch(observed_counts={"control": 100}, rollout_percentages=EVEN_SPLIT)
    assert math.isclose(result["p_value"], 1.5239706e-23, rel_tol=1e-7)


def test_a32_three_variants_one_missing():
    result = sample_ratio_mismatch(
        observed_counts={"control": 80, "test": 70},
        rollout_percentages={"control": 45, "test": 45, "variant_c": 10},
    )
    assert {key: round(value, 1) for key, value in result["expected"].items()} == {
        "control": 67.5,
        "test": 67.5,
        "variant_c": 15.0,
    }
    assert result["p_value"] < 0.01
    assert math.isclose(result["p_value"], 1.6596997e-4, rel_tol=1e-7)


def test_srm_ignores_multiple_and_excluded_variants():
    result = sample_ratio_mismatch(
        observed_counts={"control": 60, "test": 60, "$multiple": 500, "old": 900},
        rollout_percentages={"control": 40, "test": 40, "old": 20, "$multiple": 50},
        excluded_variants=["old"],
    )
    assert result == {"expected": {"control": 60.0, "test": 60.0}, "p_value": 1.0}


def test_srm_needs_two_variants():
    assert (
        sample_ratio_mismatch(observed_counts={"control": 500}, rollout_percentages={"control": 100}) is None
    )
    assert (
        sample_ratio_mismatch(
            observed_counts={"control": 500, "test": 500},
            rollout_percentages=EVEN_SPLIT,
            excluded_variants=["test"],
        )
        is None
    )


@pytest.mark.parametrize("odd", [math.nan, math.inf, -10, "50", None])
def test_srm_drops_malformed_percentages(odd):
    result = sample_ratio_mismatch(
        observed_counts={"control": 100, "test": 100, "odd": 100},
        rollout_percentages={"control": 50, "test": 50, "odd": odd},
    )
    assert result == {"expected": {"control": 100.0, "test": 100.0}, "p_value": 1.0}


def test_srm_expected_counts_follow_an_uneven_split():
    result = sample_ratio_mismatch(
        observed_counts={"control": 200, "test": 800}, rollout_percentages={"control": 20, "test": 80}
    )
    assert result == {"expected": {"control": 200.0, "test": 800.0}, "p_value": 1.0}


@pytest.mark.parametrize(
    ("metric_type", "baseline", "mde", "expected"),
    [
        (CalculatorMetricType.MEAN_COUNT, 4, 5, 6400),
        (CalculatorMetricType.MEAN_SUM_OR_AVG, 50, 5, 3200),
        (CalculatorMetricType.FUNNEL, 0.1, 50, 1152),
    ],
)
def test_a33_to_a35_sample_size(metric_type, baseline, mde, expected):
    variance = variance_for(metric_type, baseline)
    assert (
        recommended_sample_size(
            metric_type=metric_type,
            minimum_detectable_effect=mde,
            number_of_variants=2,
            baseline_value=baseline,
            variance=variance,
        )
        == expected
    )


def test_a36_ratio_needs_a_variance():
    sizes = [
        recommended_sample_size(
            metric_type="ratio",
            minimum_detectable_effect=10,
            number_of_variants=2,
            baseline_value=10,
            variance=variance,
        )
        for variance in (None, 32)
    ]
    assert sizes == [None, 1024]


def test_a37_ratio_variance_from_stats():
    stats = VariantStatistics(
        "control",
        10000,
        500000,
        3e7,
        denominator_sum=50000,
        denominator_sum_squares=300000,
        numerator_denominator_sum_product=2.6e6,
    )
    variance = ratio_variance_from_stats(stats)
    assert math.isclose(variance, 32, rel_tol=1e-6)
    baseline = baseline_value_from_stats(CalculatorMetricType.RATIO, stats)
    assert baseline == 10
    assert (
        recommended_sample_size(
            metric_type="ratio",
            minimum_detectable_effect=10,
            number_of_variants=2,
            baseline_value=baseline,
            variance=variance_for(CalculatorMetricType.RATIO, baseline, stats),
        )
        == 1024
    )


def test_a38_retention_variance_from_stats():
    stats = VariantStatistics(
        "control",
        10000,
        7000,
        7000,
        denominator_sum=10000,
        denominator_sum_squares=10000,
        numerator_denominator_sum_product=7000,
    )
    variance = variance_for(CalculatorMetricType.RETENTION, 0.7, stats)
    assert math.isclose(variance, 0.21, rel_tol=1e-6)
    assert baseline_value_from_stats(CalculatorMetricType.RETENTION, stats) == 0.7
    assert (
        recommended_sample_size(
            metric_type="retention",
            minimum_detectable_effect=10,
            number_of_variants=2,
            baseline_value=0.7,
            variance=variance,
        )
        == 1372
    )


def test_a39_positive_covariance_lowers_ratio_variance():
    def stats(product):
        return VariantStatistics(
            "control",
            1000,
            5000,
            30000,
            denominator_sum=10000,
            denominator_sum_squares=105000,
            numerator_denominator_sum_product=product,
        )

    assert math.isclose(ratio_variance_from_stats(stats(50000)), 0.0625, rel_tol=1e-6)
    assert ratio_variance_from_stats(stats(52000)) < 0.0625


def test_a40_running_days():
    assert recommended_running_time_days(sample_size=6400, exposure_rate_per_day=100) == 64
    assert recommended_running_time_days(sample_size=1000, exposure_rate_per_day=300) == 4
    assert recommended_running_time_days(sample_size=1000, exposure_rate_per_day=0) is None
    assert recommended_running_time_days(sample_size=1000, exposure_rate_per_day=None) is None


@pytest.mark.parametrize(
    ("saved", "team", "expected"), [(5, 20, 5), (None, 20, 20), (None, None, 30), (0, 20, 20), (None, 0, 30)]
)
def test_a41_minimum_detectable_effect_resolution(saved, team, expected):
    assert resolve_minimum_detectable_effect(saved, team) == expected


def test_a42_impossible_inputs_give_no_size():
    assert (
        recommended_sample_size(
            metric_type="funnel", minimum_detectable_effect=10, number_of_variants=2, baseline_value=1.5
        )
        is None
    )
    assert (
        recommended_sample_size(
            metric_type="ratio",
            minimum_detectable_effect=10,
            number_of_variants=2,
            baseline_value=10,
            variance=-32,
        )
        is None
    )
    assert (
        recommended_sample_size(
            metric_type="mean_count",
            minimum_detectable_effect=0,
            number_of_variants=2,
            baseline_value=4,
            variance=8,
        )
        is None
    )


def funnel_target():
    return recommended_sample_size(
        metric_type="funnel", minimum_detectable_effect=50, number_of_variants=2, baseline_value=10 / 100
    )


@pytest.mark.parametrize(("exposed", "remaining"), [(300, 9), (20, 12), (0, 12), (2000, 0)])
def test_a43_manual_estimate(exposed, remaining):
    assert funnel_target() == 1152
    assert (
        remaining_running_days(
            target_sample_size=1152, current_exposures=exposed, days_elapsed=4, exposure_rate_per_day=100
        )
        == remaining
    )


def test_a44_automatic_estimate_uses_the_observed_rate():
    assert remaining_running_days(target_sample_size=1152, current_exposures=40, days_elapsed=0.5) == 15


def test_automatic_estimate_needs_a_tenth_of_a_day():
    assert remaining_running_days(target_sample_size=1152, current_exposures=40, days_elapsed=0.05) is None


def test_baseline_values_from_stats():
    funnel = VariantStatistics("control", 200, 30, 30, step_counts=[80, 30])
    assert baseline_value_from_stats(CalculatorMetricType.FUNNEL, funnel) == 0.15
    assert (
        baseline_value_from_stats(CalculatorMetricType.MEAN_COUNT, VariantStatistics("c", 10, 25, 90)) == 2.5
    )
    assert baseline_value_from_stats(CalculatorMetricType.MEAN_COUNT, VariantStatistics("c", 0, 0, 0)) is None
    assert baseline_value_from_stats(CalculatorMetricType.RATIO, VariantStatistics("c", 10, 25, 90)) is None


@pytest.mark.parametrize(
    ("baseline", "variance"),
    [(math.nan, 8), (4, math.nan), (math.inf, 8), (4, math.inf), (1e-300, 8), (1e300, 8)],
)
def test_non_finite_or_extreme_inputs_give_no_size_rather_than_an_error(baseline, variance):
    size = recommended_sample_size(
        metric_type="mean_count",
        minimum_detectable_effect=5,
        number_of_variants=2,
        baseline_value=baseline,
        variance=variance,
    )
    assert size is None or (isinstance(size, int) and size > 0)


def test_non_finite_rates_give_no_running_time():
    assert recommended_running_time_days(sample_size=100, exposure_rate_per_day=math.nan) is None
    assert recommended_running_time_days(sample_size=100, exposure_rate_per_day=math.inf) is None
    assert (
        remaining_running_days(
            target_sample_size=100, current_exposures=10, days_elapsed=2, exposure_rate_per_day=math.nan
        )
        is None
    )

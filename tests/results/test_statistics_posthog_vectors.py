"""PostHog's own statistics test vectors (spec §9.A, A1–A25), to the tolerance each PostHog test uses.

``places=k`` in PostHog's tests is ``round(actual − expected, k) == 0``; ``assert_places`` is the same.
"""

import math

import pytest

from results.statistics import (
    DifferenceType,
    StatsConfig,
    StatsMethod,
    VariantStatistics,
    compare_variants,
    resolve_stats_config,
)
from results.statistics.groups import (
    StatisticsError,
    covariate_covariance,
    cuped_adjust,
    cuped_theta,
    proportion_group,
    ratio_group,
    sample_mean_group,
)
from results.statistics.groups import (
    VariantStatistics as Variant,
)
from results.statistics.methods import (
    bayesian_test,
    sequential_p_value,
    sequential_test,
    welch_degrees_of_freedom,
    welch_t_test,
)

RELATIVE = DifferenceType.RELATIVE
ABSOLUTE = DifferenceType.ABSOLUTE


def assert_places(actual, expected, places):
    assert round(actual - expected, places) == 0, f"{actual} != {expected} to {places} places"


def uplift_stddev(interval):
    # PostHog's test helper, reproduced as the tests define it (A6, A9, A11).
    low, high = interval
    return (high - low) / (2 * 1.96) ** 2


def mean_treatment():
    return sample_mean_group(2461, 1922.7, 94698.29)


def mean_control():
    return sample_mean_group(2507, 1196.87, 37377.9767)


def proportion_treatment():
    return proportion_group(1471, 62)


def proportion_control():
    return proportion_group(1529, 87)


def ratio_treatment():
    return ratio_group(2034, 99673.9364269569, 11298745.182728939, 947, 947, 99673.9364269569)


def ratio_control():
    return ratio_group(1966, 94605.79858780127, 10463129.505392816, 936, 936, 94605.79858780127)


CUPED_CONTROL = Variant(
    key="control",
    number_of_samples=2801,
    sum=280,
    sum_squares=560,
    covariate_sum=195,
    covariate_sum_squares=390,
    covariate_sum_product=-18,
)
CUPED_TREATMENT = Variant(
    key="test",
    number_of_samples=2800,
    sum=205,
    sum_squares=510,
    covariate_sum=110,
    covariate_sum_squares=380,
    covariate_sum_product=-8,
)
CUPED_SECOND_TREATMENT = Variant(
    key="test-2",
    number_of_samples=3500,
    sum=420,
    sum_squares=840,
    covariate_sum=280,
    covariate_sum_squares=560,
    covariate_sum_product=-25,
)


def test_a1_to_a3_bayesian_relative_mean():
    result = bayesian_test(mean_treatment(), mean_control(), ci_level=0.95, difference_type=RELATIVE)
    assert_places(result.effect, 0.63646, 4)
    assert_places(result.credible_interval[0], -0.0873, 4)
    assert_places(result.credible_interval[1], 1.36026, 4)
    assert_places(result.chance_to_win, 0.95759, 4)


def test_a4_to_a6_frequentist_relative_mean():
    result = welch_t_test(mean_treatment(), mean_control(), alpha=0.05, difference_type=RELATIVE)
    assert_places(result.effect, 0.63646, 4)
    assert_places(result.p_value, 0.08487, 4)
    assert_places(result.confidence_interval[0], -0.0875, 4)
    assert_places(result.confidence_interval[1], 1.36048, 4)
    assert_places(uplift_stddev(result.confidence_interval), 0.094233, 4)
    assert result.significant is False


def test_a7_welch_degrees_of_freedom():
    assert_places(welch_degrees_of_freedom(mean_treatment(), mean_control()), 4105.070, 3)


def test_a8_a9_frequentist_relative_proportion():
    result = welch_t_test(proportion_treatment(), proportion_control(), alpha=0.05, difference_type=RELATIVE)
    assert_places(result.effect, -0.25925, 4)
    assert_places(result.p_value, 0.030960, 4)
    assert_places(result.confidence_interval[0], -0.49475, 4)
    assert_places(result.confidence_interval[1], -0.02376, 4)
    assert_places(uplift_stddev(result.confidence_interval), 0.030650, 4)
    assert result.significant is True


def test_a10_a11_frequentist_relative_ratio():
    result = welch_t_test(ratio_treatment(), ratio_control(), alpha=0.05, difference_type=RELATIVE)
    assert_places(result.effect, 0.041333, 4)
    assert_places(result.p_value, 0.0032826, 4)
    assert_places(result.confidence_interval[0], 0.01378609, 4)
    assert_places(result.confidence_interval[1], 0.0689, 4)
    assert_places(uplift_stddev(result.confidence_interval), 0.00358537, 4)


def test_a12_cuped_theta_and_adjusted_means():
    theta = cuped_theta(CUPED_TREATMENT, CUPED_CONTROL)
    assert_places(theta, -0.069566052, 7)
    control_post = sample_mean_group(2801, 280, 560)
    treatment_post = sample_mean_group(2800, 205, 510)
    assert_places(control_post.mean, 0.099964299, 7)
    assert_places(treatment_post.mean, 0.073214286, 7)
    assert_places(cuped_adjust(control_post, CUPED_CONTROL, theta).mean, 0.104807347, 7)
    assert_places(cuped_adjust(treatment_post, CUPED_TREATMENT, theta).mean, 0.075947238, 7)


def cuped_comparison(method):
    config = StatsConfig(method=method, cuped_enabled=True)
    return compare_variants(
        baseline=CUPED_CONTROL, treatments=[CUPED_TREATMENT], metric_type="mean", config=config
    )["variant_results"][0]


def test_a13_cuped_frequentist_relative_to_the_unadjusted_control_mean():
    result = cuped_comparison(StatsMethod.FREQUENTIST)
    low, high = result["confidence_interval"]
    assert_places((low + high) / 2, -0.288704169, 5)
    assert_places(low, -0.486775, 5)
    assert_places(high, -0.090633, 5)
    assert result["significant"] is True


def test_a14_cuped_bayesian_relative_to_the_unadjusted_control_mean():
    result = cuped_comparison(StatsMethod.BAYESIAN)
    low, high = result["credible_interval"]
    assert_places((low + high) / 2, -0.288704169, 4)
    assert_places(low, -0.486732, 5)
    assert_places(high, -0.090676, 5)


A15_GROUP = Variant(
    key="only",
    number_of_samples=5,
    sum=14,
    sum_squares=48,
    covariate_sum=28.5,
    covariate_sum_squares=520.3,
    covariate_sum_product=85.2,
)


def test_a15_single_group_adjustment():
    post = sample_mean_group(5, 14, 48)
    assert_places(covariate_covariance(A15_GROUP), 1.35, 9)
    unadjusted = cuped_adjust(post, A15_GROUP, 0.0)
    assert_places(unadjusted.mean, 2.8, 9)
    assert_places(unadjusted.variance, 2.2, 9)
    assert_places(unadjusted.variance_reduction, 0.0, 9)
    adjusted = cuped_adjust(post, A15_GROUP, 0.31)
    assert_places(adjusted.mean, 1.033, 5)
    assert_places(adjusted.variance, 9.960346, 4)


def test_a16_theta_of_a_group_pooled_with_itself():
    assert_places(cuped_theta(A15_GROUP, A15_GROUP), 0.015090122, 7)


def adjusted_standard_deviation(variant, partner):
    theta = cuped_theta(partner, CUPED_CONTROL)
    post = sample_mean_group(variant.number_of_samples, variant.sum, variant.sum_squares)
    return math.sqrt(cuped_adjust(post, variant, theta).variance)


def test_a17_three_armed_cuped_uses_each_pairs_theta():
    assert_places(adjusted_standard_deviation(CUPED_CONTROL, CUPED_SECOND_TREATMENT), 0.434365539, 5)
    assert_places(adjusted_standard_deviation(CUPED_TREATMENT, CUPED_TREATMENT), 0.420353709, 5)
    assert_places(adjusted_standard_deviation(CUPED_SECOND_TREATMENT, CUPED_SECOND_TREATMENT), 0.473119119, 5)


def test_a18_constant_covariate_leaves_the_metric_unadjusted():
    pre = {"covariate_sum": 500, "covariate_sum_squares": 2500}
    treatment = Variant(
        key="test", number_of_samples=100, sum=500, sum_squares=3000, **pre, covariate_sum_product=2500
    )
    control = Variant(
        key="control", number_of_samples=100, sum=480, sum_squares=2800, **pre, covariate_sum_product=2400
    )
    theta = cuped_theta(treatment, control)
    assert theta == 0.0
    for variant in (treatment, control):
        post = sample_mean_group(variant.number_of_samples, variant.sum, variant.sum_squares)
        adjusted = cuped_adjust(post, variant, theta)
        assert_places(adjusted.variance_reduction, 0.0, 10)
        assert_places(adjusted.mean, post.mean, 10)


def test_a19_sequential_identical_groups_give_p_value_one():
    group = proportion_group(2000, 100)
    result = sequential_test(group, group, alpha=0.05, tuning_parameter=5000, difference_type=ABSOLUTE)
    assert result.p_value == 1.0
    assert result.significant is False


def test_a20_sequential_p_value_starts_at_one():
    assert (
        sequential_p_value(effect=0.01, variance=1.0, sample_size=10, tuning_parameter=5000, alpha=0.05)
        == 1.0
    )


def test_a21_sequential_interval_is_wider_around_the_same_estimate():
    fixed = welch_t_test(mean_treatment(), mean_control(), alpha=0.05, difference_type=RELATIVE)
    sequential = sequential_test(
        mean_treatment(), mean_control(), alpha=0.05, tuning_parameter=5000, difference_type=RELATIVE
    )
    assert sequential.confidence_interval[0] < fixed.confidence_interval[0]
    assert sequential.confidence_interval[1] > fixed.confidence_interval[1]
    assert_places(sequential.effect, fixed.effect, 6)
    assert math.isnan(sequential.degrees_of_freedom)


@pytest.mark.parametrize(
    ("method", "probability_field", "interval_field"),
    [("bayesian", "chance_to_win", "credible_interval"), ("frequentist", "p_value", "confidence_interval")],
)
def test_a22_stats_config_smoke(method, probability_field, interval_field):
    result = compare_variants(
        baseline=VariantStatistics(key="control", number_of_samples=1000, sum=100, sum_squares=10500),
        treatments=[VariantStatistics(key="test", number_of_samples=1000, sum=120, sum_squares=14500)],
        metric_type="mean",
        config=resolve_stats_config({"method": method}),
    )["variant_results"][0]
    assert len(result[interval_field]) == 2
    assert 0 <= result[probability_field] <= 1
    assert isinstance(result["significant"], bool)
    assert result["method"] == method


@pytest.mark.parametrize(
    ("control", "treatment"),
    [((1, 0.5, 0.25), (1, 0.3, 0.09)), ((100, 0, 0), (100, 50, 2600)), ((100, 100, 100), (100, 100, 100))],
)
@pytest.mark.parametrize("method", ["bayesian", "frequentist"])
def test_a23_insufficient_data_echoes_the_sums_and_nulls_the_statistics(control, treatment, method):
    response = compare_variants(
        baseline=VariantStatistics("control", *control),
        treatments=[VariantStatistics("test", *treatment)],
        metric_type="mean",
        config=resolve_stats_config({"method": method}),
    )
    baseline, result = response["baseline"], response["variant_results"][0]
    assert (baseline["number_of_samples"], baseline["sum"], baseline["sum_squares"]) == control
    assert (result["number_of_samples"], result["sum"], result["sum_squares"]) == treatment
    for field in (
        ("chance_to_win", "credible_interval") if method == "bayesian" else ("p_value", "confidence_interval")
    ):
        assert result[field] is None
    assert result["significant"] is None


def test_a24_out_of_range_alpha_falls_back_to_five_percent():
    intervals = []
    for alpha in (5.0, -0.5, 0.05):
        config = resolve_stats_config({"method": "frequentist", "frequentist": {"alpha": alpha}})
        assert config.alpha == 0.05
        intervals.append(
            compare_variants(
                baseline=VariantStatistics("control", 1000, 100, 10500),
                treatments=[VariantStatistics("test", 1000, 120, 14500)],
                metric_type="mean",
                config=config,
            )["variant_results"][0]["confidence_interval"]
        )
    assert intervals[0] == intervals[1] == intervals[2]


def test_a25_statistic_basics():
    mean = sample_mean_group(5, 15, 55)
    assert (mean.mean, mean.variance) == (3.0, 2.5)
    proportion = proportion_group(100, 25)
    assert (proportion.mean, proportion.variance) == (0.25, 0.1875)
    with pytest.raises(StatisticsError):
        sample_mean_group(5, 15, 40)

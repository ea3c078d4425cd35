"""The spec's DERIVED vectors (§9.C, C1–C14): full-precision regression values from a scipy
reimplementation of PostHog's formulas, checked through ``compare_variants`` at 1e-8 relative."""

import math

import pytest

from results.statistics import StatsConfig, StatsMethod, VariantStatistics, compare_variants
from results.statistics.config import DifferenceType
from results.statistics.groups import (
    CUPED_MINIMUM_VARIANCE,
    cuped_adjust,
    cuped_theta,
    proportion_group,
    ratio_group,
    sample_mean_group,
)
from results.statistics.methods import sequential_half_width, sequential_p_value, sequential_rho, welch_t_test

BAYESIAN = StatsConfig(method=StatsMethod.BAYESIAN)
FREQUENTIST = StatsConfig(method=StatsMethod.FREQUENTIST)
SEQUENTIAL = StatsConfig(method=StatsMethod.FREQUENTIST, sequential_testing_enabled=True)


def close(value, expected, rel=1e-8):
    return math.isclose(value, expected, rel_tol=rel, abs_tol=1e-15)


def assert_interval(interval, expected, rel=1e-8):
    assert close(interval[0], expected[0], rel) and close(interval[1], expected[1], rel), interval


def mean(key, n, total, squares, **extra):
    return VariantStatistics(key=key, number_of_samples=n, sum=total, sum_squares=squares, **extra)


def funnel(key, n, conversions, **extra):
    return VariantStatistics(
        key=key,
        number_of_samples=n,
        sum=conversions,
        sum_squares=conversions,
        step_counts=[conversions],
        **extra,
    )


def ratio(key, n, numerator, numerator_squares, denominator, denominator_squares, product):
    return VariantStatistics(
        key=key,
        number_of_samples=n,
        sum=numerator,
        sum_squares=numerator_squares,
        denominator_sum=denominator,
        denominator_sum_squares=denominator_squares,
        numerator_denominator_sum_product=product,
    )


def retention(key, starters, retained):
    return ratio(key, starters, retained, retained, starters, starters, retained)


def first_result(baseline, treatment, metric_type, config):
    return compare_variants(
        baseline=baseline, treatments=[treatment], metric_type=metric_type, config=config
    )["variant_results"][0]


PROPORTION_CONTROL = funnel("control", 1529, 87)
PROPORTION_TEST = funnel("test", 1471, 62)
RATIO_CONTROL = ratio("control", 1966, 94605.79858780127, 10463129.505392816, 936, 936, 94605.79858780127)
RATIO_TEST = ratio("test", 2034, 99673.9364269569, 11298745.182728939, 947, 947, 99673.9364269569)
MEAN_CONTROL = mean("control", 2507, 1196.87, 37377.9767)
MEAN_TEST = mean("test", 2461, 1922.7, 94698.29)


def test_c1_proportion_bayesian_clear_loser_is_significant():
    result = first_result(PROPORTION_CONTROL, PROPORTION_TEST, "funnel", BAYESIAN)
    assert close(result["chance_to_win"], 0.0154403810)
    assert_interval(result["credible_interval"], (-0.4946573380, -0.0238577077))
    assert result["significant"] is True


def test_c2_ratio_bayesian():
    result = first_result(RATIO_CONTROL, RATIO_TEST, "ratio", BAYESIAN)
    assert close(result["chance_to_win"], 0.9983680996)
    assert_interval(result["credible_interval"], (0.0137944898, 0.0688719535))


def test_c1_c2_welch_degrees_of_freedom():
    proportions = welch_t_test(
        proportion_group(1471, 62),
        proportion_group(1529, 87),
        alpha=0.05,
        difference_type=DifferenceType.RELATIVE,
    )
    assert close(proportions.degrees_of_freedom, 2966.5207, rel=1e-7)
    ratios = welch_t_test(
        ratio_group(2034, 99673.9364269569, 11298745.182728939, 947, 947, 99673.9364269569),
        ratio_group(1966, 94605.79858780127, 10463129.505392816, 936, 936, 94605.79858780127),
        alpha=0.05,
        difference_type=DifferenceType.RELATIVE,
    )
    assert close(ratios.degrees_of_freedom, 3970.5615, rel=1e-7)


def test_c3_sequential_mean():
    result = first_result(MEAN_CONTROL, MEAN_TEST, "mean", SEQUENTIAL)
    assert close(result["p_value"], 0.7978537508)
    assert_interval(result["confidence_interval"], (-0.4844276883, 1.7573617877))
    assert result["significant"] is False


PURCHASE_CONTROL = mean("control", 60, 660, 7300)
PURCHASE_TEST = mean("test", 60, 960, 15400)


def test_c4_bayesian_decisive_result():
    result = first_result(PURCHASE_CONTROL, PURCHASE_TEST, "mean", BAYESIAN)
    assert result["chance_to_win"] == 1.0
    assert_interval(result["credible_interval"], (0.4211135006, 0.4879774085))
    assert result["significant"] is True


def test_c4_frequentist_p_value_underflows_to_zero_as_in_posthog():
    result = first_result(PURCHASE_CONTROL, PURCHASE_TEST, "mean", FREQUENTIST)
    assert result["p_value"] == 0.0
    assert_interval(result["confidence_interval"], (0.4207670937, 0.4883238154))


def test_c4_sequential():
    result = first_result(PURCHASE_CONTROL, PURCHASE_TEST, "mean", SEQUENTIAL)
    assert close(result["p_value"], 2.327759899e-25)
    assert_interval(result["confidence_interval"], (0.3486549796, 0.5604359295))


FUNNEL_CONTROL = funnel("control", 1000, 100)
FUNNEL_TEST = funnel("test", 1000, 110)


def test_c5_funnel_relative_both_methods():
    bayesian = first_result(FUNNEL_CONTROL, FUNNEL_TEST, "funnel", BAYESIAN)
    assert close(bayesian["chance_to_win"], 0.7565926771)
    assert_interval(bayesian["credible_interval"], (-0.1818534520, 0.3818534520))
    assert bayesian["significant"] is False
    frequentist = first_result(FUNNEL_CONTROL, FUNNEL_TEST, "funnel", FREQUENTIST)
    assert close(frequentist["p_value"], 0.4868956554)
    assert_interval(frequentist["confidence_interval"], (-0.1820245994, 0.3820245994))
    assert frequentist["significant"] is False


def test_c6_funnel_absolute_both_methods():
    bayesian = first_result(
        FUNNEL_CONTROL, FUNNEL_TEST, "funnel", StatsConfig(difference_type=DifferenceType.ABSOLUTE)
    )
    assert close(bayesian["chance_to_win"], 0.7671578764)
    assert_interval(bayesian["credible_interval"], (-0.0168665240, 0.0368665240))
    frequentist = first_result(
        FUNNEL_CONTROL,
        FUNNEL_TEST,
        "funnel",
        StatsConfig(method=StatsMethod.FREQUENTIST, difference_type=DifferenceType.ABSOLUTE),
    )
    assert close(frequentist["p_value"], 0.4657699105)
    assert_interval(frequentist["confidence_interval"], (-0.0168828379, 0.0368828379))


BAYESIAN_FIXTURE_CONTROL = mean("control", 100, 500, 2550)
BAYESIAN_FIXTURE_TEST = mean("test", 100, 550, 3050)


def test_c7_mean_absolute_and_relative():
    absolute = first_result(
        BAYESIAN_FIXTURE_CONTROL,
        BAYESIAN_FIXTURE_TEST,
        "mean",
        StatsConfig(difference_type=DifferenceType.ABSOLUTE),
    )
    assert close(absolute["chance_to_win"], 0.9999999954)
    assert_interval(absolute["credible_interval"], (0.3294070319, 0.6705929681))
    relative = first_result(BAYESIAN_FIXTURE_CONTROL, BAYESIAN_FIXTURE_TEST, "mean", BAYESIAN)
    assert close(relative["chance_to_win"], 0.9999999628)
    assert_interval(relative["credible_interval"], (0.0635713106, 0.1364286894))
    frequentist = first_result(
        BAYESIAN_FIXTURE_CONTROL,
        BAYESIAN_FIXTURE_TEST,
        "mean",
        StatsConfig(method=StatsMethod.FREQUENTIST, difference_type=DifferenceType.ABSOLUTE),
    )
    assert close(frequentist["p_value"], 3.912434798e-08)
    assert_interval(frequentist["confidence_interval"], (0.3282405597, 0.6717594403))


def test_c8_noisy_mean_is_not_significant():
    control, test = mean("control", 1000, 100, 10500), mean("test", 1000, 120, 14500)
    bayesian = first_result(control, test, "mean", BAYESIAN)
    assert close(bayesian["chance_to_win"], 0.5462556665)
    assert_interval(bayesian["credible_interval"], (-3.1732352930, 3.5732352930))
    assert bayesian["significant"] is False
    frequentist = first_result(control, test, "mean", FREQUENTIST)
    assert close(frequentist["p_value"], 0.9075006442)
    assert_interval(frequentist["confidence_interval"], (-3.1753323390, 3.5753323390))


@pytest.mark.parametrize(
    ("ci_level", "interval"),
    [
        (0.90, (-0.6912824414, 1.0912824414)),
        (0.95, (-0.8620285335, 1.2620285335)),
        (0.99, (-1.1957420850, 1.5957420850)),
    ],
)
def test_c9_credible_level_widens_the_interval_not_the_chance_to_win(ci_level, interval):
    result = first_result(
        mean("control", 1000, 1000, 105000),
        mean("test", 1000, 1200, 145000),
        "mean",
        StatsConfig(ci_level=ci_level),
    )
    assert close(result["chance_to_win"], 0.6439727266)
    assert_interval(result["credible_interval"], interval)


def test_c10_retention_methods_disagree_on_significance():
    control, test = retention("control", 600, 240), retention("test", 620, 279)
    bayesian = first_result(control, test, "retention", BAYESIAN)
    assert close(bayesian["chance_to_win"], 0.9515712851)
    assert_interval(bayesian["credible_interval"], (-0.0225624467, 0.2725624467))
    assert bayesian["significant"] is True
    frequentist = first_result(control, test, "retention", FREQUENTIST)
    assert close(frequentist["p_value"], 0.0971149030)
    assert_interval(frequentist["confidence_interval"], (-0.0227092722, 0.2727092722))
    assert frequentist["significant"] is False


def test_c10_retention_denominators_default_to_one_per_starter():
    explicit = first_result(
        retention("control", 600, 240), retention("test", 620, 279), "retention", BAYESIAN
    )
    implicit = first_result(
        mean("control", 600, 240, 240), mean("test", 620, 279, 279), "retention", BAYESIAN
    )
    assert implicit["chance_to_win"] == explicit["chance_to_win"]
    assert implicit["credible_interval"] == explicit["credible_interval"]


def test_c11_three_arms_each_against_the_baseline():
    control = mean("control", 500, 5000, 60000)
    treatments = [mean("test-1", 500, 5250, 66000), mean("test-2", 480, 4700, 56000)]
    bayesian = compare_variants(baseline=control, treatments=treatments, metric_type="mean", config=BAYESIAN)
    first, second = bayesian["variant_results"]
    assert (first["key"], second["key"]) == ("test-1", "test-2")
    assert close(first["chance_to_win"], 0.9542610952)
    assert_interval(first["credible_interval"], (-0.0080677333, 0.1080677333))
    assert first["significant"] is True
    assert close(second["chance_to_win"], 0.2332194413)
    assert_interval(second["credible_interval"], (-0.0769000643, 0.0352333977))
    frequentist = compare_variants(
        baseline=control, treatments=treatments, metric_type="mean", config=FREQUENTIST
    )
    first, second = frequentist["variant_results"]
    assert close(first["p_value"], 0.0917908167)
    assert_interval(first["confidence_interval"], (-0.0081383653, 0.1081383653))
    assert close(second["p_value"], 0.4666138512)
    assert_interval(second["confidence_interval"], (-0.0769697892, 0.0353031225))


CUPED_FUNNEL_CONTROL = funnel(
    "control", 60, 36, covariate_sum=30, covariate_sum_squares=30, covariate_sum_product=26
)
CUPED_FUNNEL_TEST = funnel(
    "test", 60, 40, covariate_sum=30, covariate_sum_squares=30, covariate_sum_product=28
)


def test_c12_cuped_funnel_adjustment():
    theta = cuped_theta(CUPED_FUNNEL_TEST, CUPED_FUNNEL_CONTROL)
    assert close(theta, 0.5333333333)
    test = cuped_adjust(proportion_group(60, 40), CUPED_FUNNEL_TEST, theta)
    control = cuped_adjust(proportion_group(60, 36), CUPED_FUNNEL_CONTROL, theta)
    assert close(test.mean, 0.4) and close(control.mean, 0.3333333333)
    assert close(test.variance, 0.1499058380) and close(control.variance, 0.1676836158)


def test_c12_cuped_funnel_results_and_without_cuped():
    cuped = {"cuped_enabled": True}
    bayesian = first_result(CUPED_FUNNEL_CONTROL, CUPED_FUNNEL_TEST, "funnel", StatsConfig(**cuped))
    assert close(bayesian["chance_to_win"], 0.8621520433)
    assert_interval(bayesian["credible_interval"], (-0.0886741743, 0.3108963965))
    frequentist = first_result(
        CUPED_FUNNEL_CONTROL,
        CUPED_FUNNEL_TEST,
        "funnel",
        StatsConfig(method=StatsMethod.FREQUENTIST, **cuped),
    )
    assert close(frequentist["p_value"], 0.2779238368)
    assert_interval(frequentist["confidence_interval"], (-0.0907508120, 0.3129730342))
    # The same sums with CUPED off: the covariates are echoed but not used.
    plain = first_result(CUPED_FUNNEL_CONTROL, CUPED_FUNNEL_TEST, "funnel", FREQUENTIST)
    assert close(plain["p_value"], 0.4747087169)
    assert plain["covariate_sum"] == 30
    assert close(
        first_result(CUPED_FUNNEL_CONTROL, CUPED_FUNNEL_TEST, "funnel", BAYESIAN)["chance_to_win"],
        0.7633552673,
    )


CORRELATED_CONTROL = mean(
    "control", 60, 1830, 73810, covariate_sum=1830, covariate_sum_squares=73810, covariate_sum_product=73810
)
CORRELATED_TEST = mean(
    "test", 60, 1890, 77530, covariate_sum=1830, covariate_sum_squares=73810, covariate_sum_product=75640
)


def test_c13_fully_explained_metric_floors_the_variance_and_still_tests():
    theta = cuped_theta(CORRELATED_TEST, CORRELATED_CONTROL)
    assert close(theta, 1.0)
    for variant, adjusted_mean in ((CORRELATED_TEST, 1.0), (CORRELATED_CONTROL, 0.0)):
        post = sample_mean_group(variant.number_of_samples, variant.sum, variant.sum_squares)
        adjusted = cuped_adjust(post, variant, theta)
        assert math.isclose(adjusted.mean, adjusted_mean, abs_tol=1e-9)
        assert adjusted.variance == CUPED_MINIMUM_VARIANCE
    bayesian = first_result(CORRELATED_CONTROL, CORRELATED_TEST, "mean", StatsConfig(cuped_enabled=True))
    assert bayesian["chance_to_win"] == 1.0
    assert_interval(bayesian["credible_interval"], (0.0327868022, 0.0327869683))
    frequentist = first_result(
        CORRELATED_CONTROL,
        CORRELATED_TEST,
        "mean",
        StatsConfig(method=StatsMethod.FREQUENTIST, cuped_enabled=True),
    )
    assert frequentist["p_value"] == 0.0
    assert close(
        first_result(CORRELATED_CONTROL, CORRELATED_TEST, "mean", FREQUENTIST)["p_value"], 0.7582258071
    )
    assert close(
        first_result(CORRELATED_CONTROL, CORRELATED_TEST, "mean", BAYESIAN)["chance_to_win"], 0.6211591030
    )


def test_c14_sequential_primitives():
    assert close(sequential_rho(alpha=0.05, tuning_parameter=5000), 0.0398400668)
    assert close(
        sequential_half_width(variance=1 / 5000, sample_size=5000, tuning_parameter=5000, alpha=0.05),
        0.0429243372,
    )
    assert (
        sequential_p_value(effect=0.5, variance=1e-4, sample_size=10000, tuning_parameter=5000, alpha=0.05)
        < 0.05
    )

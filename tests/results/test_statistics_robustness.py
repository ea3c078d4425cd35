"""Whatever sufficient statistics arrive, compare_variants answers in shape and never raises; and
breakdown buckets combine into the headline row."""

import math
import random

import pytest

from results.statistics import (
    DifferenceType,
    StatsConfig,
    StatsMethod,
    VariantStatistics,
    combine_variant_statistics,
    compare_variants,
)

CONFIGS = [
    StatsConfig(),
    StatsConfig(difference_type=DifferenceType.ABSOLUTE, ci_level=0.8),
    StatsConfig(method=StatsMethod.FREQUENTIST),
    StatsConfig(method=StatsMethod.FREQUENTIST, difference_type=DifferenceType.ABSOLUTE, alpha=0.01),
    StatsConfig(
        method=StatsMethod.FREQUENTIST, sequential_testing_enabled=True, sequential_tuning_parameter=1
    ),
    StatsConfig(cuped_enabled=True),
    StatsConfig(method=StatsMethod.FREQUENTIST, cuped_enabled=True),
]
ODD_NUMBERS = [0.0, -1.0, 1e-300, 1e300, -1e300, math.inf, -math.inf, math.nan, 5e-324]


def random_number(rng):
    return rng.choice(ODD_NUMBERS) if rng.random() < 0.15 else rng.uniform(-1e4, 1e6)


def plausible_sums(rng, n, *, binary=False):
    # (Σv, Σv²) of n values: 0/1 values for conversions, otherwise non-negative reals.
    if binary:
        total = rng.randint(0, n)
        return total, total
    total = rng.uniform(0, 10.0 * n)
    return total, total * total / n + rng.uniform(0, 100.0 * n)


def random_variant(rng, key, metric_type):
    n = rng.choice([0, 1, 2, 49, 50, 51, 1000, 1000, 10**7, -3])
    if n <= 0 or rng.random() < 0.25:
        return VariantStatistics(
            key=key,
            number_of_samples=n,
            sum=random_number(rng),
            sum_squares=random_number(rng),
            denominator_sum=random_number(rng),
            denominator_sum_squares=random_number(rng),
            numerator_denominator_sum_product=random_number(rng),
            covariate_sum=random_number(rng),
            covariate_sum_squares=random_number(rng),
            covariate_sum_product=random_number(rng),
        )
    total, squares = plausible_sums(rng, n, binary=metric_type in ("funnel", "retention"))
    denominator, denominator_squares = plausible_sums(rng, n)
    covariate, covariate_squares = plausible_sums(rng, n)
    return VariantStatistics(
        key=key,
        number_of_samples=n,
        sum=total,
        sum_squares=squares,
        denominator_sum=denominator,
        denominator_sum_squares=denominator_squares,
        numerator_denominator_sum_product=rng.uniform(-1, 1) * math.sqrt(squares * denominator_squares),
        covariate_sum=covariate,
        covariate_sum_squares=covariate_squares,
        covariate_sum_product=rng.uniform(-1, 1) * math.sqrt(squares * covariate_squares),
    )


def check_result(result, config):
    if config.method is StatsMethod.BAYESIAN:
        probability, interval = result["chance_to_win"], result["credible_interval"]
    else:
        probability, interval = result["p_value"], result["confidence_interval"]
    if probability is None:
        assert interval is None and result["significant"] is None
        return False
    assert 0.0 <= probability <= 1.0
    assert len(interval) == 2 and not math.isnan(interval[0]) and not math.isnan(interval[1])
    assert interval[0] <= interval[1]
    assert isinstance(result["significant"], bool)
    return True


@pytest.mark.parametrize("metric_type", ["mean", "funnel", "ratio", "retention"])
def test_random_and_hostile_statistics_never_raise(metric_type):
    rng = random.Random(f"statistics-{metric_type}")
    tested = 0
    for round_number in range(400):
        config = CONFIGS[round_number % len(CONFIGS)]
        baseline = random_variant(rng, "control", metric_type)
        treatments = [random_variant(rng, f"test-{i}", metric_type) for i in range(rng.randint(1, 3))]
        response = compare_variants(
            baseline=baseline, treatments=treatments, metric_type=metric_type, config=config
        )
        assert [result["key"] for result in response["variant_results"]] == [t.key for t in treatments]
        tested += sum(check_result(result, config) for result in response["variant_results"])
    # The generator is meant to reach the tests too, not only the validation failures.
    assert tested > 50


def test_plausible_funnels_always_get_frequentist_statistics():
    rng = random.Random("funnels")
    for _ in range(300):
        n_control, n_test = rng.randint(50, 10**6), rng.randint(50, 10**6)
        control_conversions = rng.randint(5, n_control - 1)
        test_conversions = rng.randint(5, n_test - 1)
        response = compare_variants(
            baseline=VariantStatistics("control", n_control, control_conversions, control_conversions),
            treatments=[VariantStatistics("test", n_test, test_conversions, test_conversions)],
            metric_type="funnel",
            config=StatsConfig(method=StatsMethod.FREQUENTIST),
        )
        assert check_result(response["variant_results"][0], StatsConfig(method=StatsMethod.FREQUENTIST))


def test_combining_breakdown_buckets_sums_everything():
    parts = [
        VariantStatistics("test", 10, 4, 4, step_counts=[6, 4], covariate_sum=3, covariate_sum_squares=3),
        VariantStatistics("test", 20, 5, 5, step_counts=[9, 5, 1]),
        VariantStatistics("test", 0, 0, 0),
    ]
    combined = combine_variant_statistics("test", parts)
    assert combined == VariantStatistics(
        "test", 30, 9, 9, step_counts=[15, 9, 1], covariate_sum=3, covariate_sum_squares=3
    )
    assert combined.denominator_sum is None


def test_combined_buckets_test_like_the_unsplit_data():
    buckets = [VariantStatistics("control", 300, 30, 30), VariantStatistics("control", 700, 70, 70)]
    treatment = [VariantStatistics("test", 500, 60, 60), VariantStatistics("test", 500, 50, 50)]
    combined = compare_variants(
        baseline=combine_variant_statistics("control", buckets),
        treatments=[combine_variant_statistics("test", treatment)],
        metric_type="funnel",
        config=StatsConfig(),
    )
    whole = compare_variants(
        baseline=VariantStatistics("control", 1000, 100, 100),
        treatments=[VariantStatistics("test", 1000, 110, 110)],
        metric_type="funnel",
        config=StatsConfig(),
    )
    assert combined["variant_results"][0]["chance_to_win"] == whole["variant_results"][0]["chance_to_win"]

"""The normal, Student t and chi-square functions the statistics are built on, against published values.

Reference values are table entries (as printed by scipy 1.17) and closed forms (e.g. the t distribution with 1 degree
of freedom is Cauchy, with 2 it has an algebraic CDF; χ² with 2 degrees of freedom is exponential).
"""

import math

import pytest

from results.statistics.distributions import (
    chi_square_survival,
    normal_cdf,
    normal_ppf,
    regularized_incomplete_beta,
    student_t_cdf,
    student_t_ppf,
    student_t_upper_tail,
)


@pytest.mark.parametrize(
    ("p", "quantile"),
    [
        (0.5, 0.0),
        (0.975, 1.959963984540054),
        (0.95, 1.6448536269514722),
        (0.995, 2.5758293035489004),
        (0.025, -1.959963984540054),
        (1e-10, -6.361340902404056),
        (1 - 1e-10, 6.361340889697422),
    ],
)
def test_normal_quantile_matches_published_values(p, quantile):
    assert normal_ppf(p) == pytest.approx(quantile, rel=1e-9, abs=1e-12)


def test_normal_quantile_inverts_the_cdf_across_the_range():
    for exponent in range(1, 300, 7):
        p = 10.0**-exponent
        assert normal_cdf(normal_ppf(p)) == pytest.approx(p, rel=1e-12)
    for p in (0.01, 0.1, 0.3, 0.49, 0.51, 0.7, 0.9, 0.99):
        assert normal_cdf(normal_ppf(p)) == pytest.approx(p, rel=1e-14)


def test_normal_quantile_ends_and_bad_input():
    assert normal_ppf(0.0) == -math.inf
    assert normal_ppf(1.0) == math.inf
    for bad in (-0.1, 1.1, math.nan):
        with pytest.raises(ValueError):
            normal_ppf(bad)


@pytest.mark.parametrize("t", [-30.0, -3.0, -0.5, 0.0, 0.2, 1.0, 4.0, 100.0])
def test_t_with_one_degree_of_freedom_is_cauchy(t):
    assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, rel=1e-12)


@pytest.mark.parametrize("t", [-8.0, -1.5, 0.0, 0.3, 2.0, 50.0])
def test_t_with_two_degrees_of_freedom_has_its_closed_form(t):
    assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), rel=1e-12)


@pytest.mark.parametrize(
    ("p", "df", "quantile"),
    [
        (0.975, 1, 12.706204736174694),
        (0.975, 10, 2.228138851986274),
        (0.975, 30, 2.0422724563012378),
        (0.95, 5, 2.0150483733330233),
        (0.995, 3, 5.840909309733355),
        (0.975, 118, 1.980272249272974),
        (0.6, 7.5, 0.26250189880429486),
    ],
)
def test_t_quantile_matches_published_values(p, df, quantile):
    assert student_t_ppf(p, df) == pytest.approx(quantile, rel=1e-9)
    assert student_t_ppf(1 - p, df) == pytest.approx(-quantile, rel=1e-9)


def test_t_quantile_inverts_the_cdf_for_fractional_df():
    for df in (1.3, 4.7, 57.25, 4105.07, 1e6):
        for p in (0.6, 0.9, 0.975, 0.999, 1 - 1e-9):
            assert student_t_cdf(student_t_ppf(p, df), df) == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize(
    ("df", "quantile"), [(2e4, 1.9600826051581348), (1e6, 1.959966356814107), (1e9, 1.959963986912325)]
)
def test_t_quantile_at_the_huge_df_of_large_experiments(df, quantile):
    assert student_t_ppf(0.975, df) == pytest.approx(quantile, rel=1e-12)


def test_t_tail_is_continuous_where_the_large_df_method_takes_over():
    # The true tail moves by about 2.5e-10 (relative) over this step in df; a seam would be far larger.
    below, above = student_t_upper_tail(2.5, 9_999.999), student_t_upper_tail(2.5, 10_000.001)
    assert above == pytest.approx(below, rel=1e-9)


def test_t_converges_to_the_normal_for_infinite_df():
    assert student_t_ppf(0.975, math.inf) == pytest.approx(1.959963984540054, rel=1e-14)
    assert student_t_upper_tail(2.0, math.inf) == pytest.approx(normal_cdf(-2.0), rel=1e-14)


def test_t_tail_far_out_stays_positive_and_the_cdf_rounds_to_one():
    tail = student_t_upper_tail(30.0, 100)
    assert 0 < tail < 1e-50
    assert student_t_cdf(30.0, 100) == 1.0


def test_t_quantile_rejects_probabilities_outside_the_open_interval():
    for bad in (0.0, 1.0, -1.0, math.nan):
        with pytest.raises(ValueError):
            student_t_ppf(bad, 10)


def test_incomplete_beta_closed_forms_and_ends():
    # I_x(a, 1) = x^a and I_x(1, b) = 1 − (1 − x)^b.
    assert regularized_incomplete_beta(3.5, 1.0, 0.3) == pytest.approx(0.3**3.5, rel=1e-12)
    assert regularized_incomplete_beta(1.0, 2.5, 0.8) == pytest.approx(1 - 0.2**2.5, rel=1e-12)
    assert regularized_incomplete_beta(2.0, 3.0, 0.0) == 0.0
    assert regularized_incomplete_beta(2.0, 3.0, 1.0) == 1.0


@pytest.mark.parametrize("statistic", [0.5, 3.0, 20.0, 150.0])
def test_chi_square_with_two_degrees_of_freedom_is_exponential(statistic):
    assert chi_square_survival(statistic, 2) == pytest.approx(math.exp(-statistic / 2), rel=1e-12)


@pytest.mark.parametrize("statistic", [0.01, 1.0, 3.8414588206941285, 64.0, 100.0])
def test_chi_square_with_one_degree_of_freedom_matches_erfc(statistic):
    assert chi_square_survival(statistic, 1) == pytest.approx(math.erfc(math.sqrt(statistic / 2)), rel=1e-12)


def test_chi_square_survival_of_zero_is_one_and_critical_values_give_alpha():
    assert chi_square_survival(0.0, 3) == 1.0
    assert chi_square_survival(7.814727903251178, 3) == pytest.approx(0.05, rel=1e-10)
    assert chi_square_survival(23.20925115895436, 10) == pytest.approx(0.01, rel=1e-10)

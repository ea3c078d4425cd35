"""The two-group tests: Bayesian (§4.5), frequentist Welch t-test (§4.6) and sequential (§4.7).

Each test compares one treatment group with the baseline on the effect of §4.4 and raises
``StatisticsError`` when the numbers admit no test; the caller turns that into "no statistics".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from results.statistics.config import DifferenceType, ExperimentStatisticsError
from results.statistics.distributions import normal_cdf, normal_ppf, student_t_cdf, student_t_ppf
from results.statistics.groups import Group, StatisticsError

MINIMUM_RELATIVE_DENOMINATOR = 1e-10
FREQUENTIST_MINIMUM_GROUP_SIZE = 5
BAYESIAN_MINIMUM_SUCCESSES_AND_FAILURES = 5
PROPORTION_BOUNDARY_TOLERANCE = 1e-10


@dataclass(frozen=True)
class Effect:
    """The treatment's effect on the baseline (a fraction when relative) and the variance of that estimate."""

    estimate: float
    variance: float


def estimate_effect(
    treatment: Group,
    control: Group,
    difference_type: DifferenceType,
    *,
    relative_denominator: float | None = None,
) -> Effect:
    """Δ and its variance by the delta method, groups independent.

    ``relative_denominator`` overrides the control mean as the divisor of a relative effect (CUPED
    divides by the unadjusted control mean).
    """
    if difference_type is DifferenceType.ABSOLUTE:
        return Effect(
            estimate=treatment.mean - control.mean,
            variance=treatment.variance / treatment.n + control.variance / control.n,
        )
    denominator = control.mean if relative_denominator is None else relative_denominator
    if abs(denominator) < MINIMUM_RELATIVE_DENOMINATOR:
        raise StatisticsError("Baseline mean is too close to zero for a relative effect")
    estimate = (treatment.mean - control.mean) / denominator
    variance = treatment.variance / (treatment.n * denominator**2) + treatment.mean**2 * control.variance / (
        control.n * denominator**4
    )
    return Effect(estimate=estimate, variance=variance)


def _require_usable(effect: Effect) -> None:
    if not (math.isfinite(effect.estimate) and math.isfinite(effect.variance)) or effect.variance <= 0:
        raise StatisticsError("The effect has no positive, finite variance")


def _require_open_unit_interval(level: float) -> None:
    if not (0.0 < level < 1.0):
        raise ExperimentStatisticsError()


@dataclass(frozen=True)
class BayesianResult:
    effect: float
    chance_to_win: float
    credible_interval: tuple[float, float]
    significant: bool


def bayesian_test(
    treatment: Group,
    control: Group,
    *,
    ci_level: float,
    difference_type: DifferenceType,
    relative_denominator: float | None = None,
) -> BayesianResult:
    """Flat-prior Gaussian posterior on the effect: chance to win Φ(Δ/√V), interval Δ ± z·√V.

    A clear loser (chance to win below 1 − ci_level) is as significant as a clear winner.
    """
    _require_open_unit_interval(ci_level)
    for group in (treatment, control):
        if not (math.isfinite(group.mean) and math.isfinite(group.variance)) or group.variance < 0:
            raise StatisticsError("Group means and variances must be finite and variances non-negative")
        if group.is_proportion:
            failures = group.n - group.successes
            if min(group.successes, failures) < BAYESIAN_MINIMUM_SUCCESSES_AND_FAILURES:
                raise StatisticsError("A proportion needs at least 5 successes and 5 failures")
            if min(group.mean, 1.0 - group.mean) < PROPORTION_BOUNDARY_TOLERANCE:
                raise StatisticsError("A proportion of exactly 0 or 1 has no variance")
    if difference_type is DifferenceType.RELATIVE:
        denominator = control.mean if relative_denominator is None else relative_denominator
        if not denominator > 0:
            raise StatisticsError("A relative Bayesian effect needs a positive baseline mean")
    effect = estimate_effect(treatment, control, difference_type, relative_denominator=relative_denominator)
    _require_usable(effect)
    standard_error = math.sqrt(effect.variance)
    chance_to_win = normal_cdf(effect.estimate / standard_error)
    z = normal_ppf(1.0 - (1.0 - ci_level) / 2.0)
    return BayesianResult(
        effect=effect.estimate,
        chance_to_win=chance_to_win,
        credible_interval=(effect.estimate - z * standard_error, effect.estimate + z * standard_error),
        significant=chance_to_win > ci_level or chance_to_win < 1.0 - ci_level,
    )


@dataclass(frozen=True)
class FrequentistResult:
    effect: float
    p_value: float
    confidence_interval: tuple[float, float]
    significant: bool
    # NaN for the sequential test, which has no t distribution.
    degrees_of_freedom: float


def welch_degrees_of_freedom(treatment: Group, control: Group) -> float:
    """Welch–Satterthwaite df from the raw per-group variances (also for relative effects)."""
    a = treatment.variance / treatment.n
    b = control.variance / control.n
    denominator = a * a / (treatment.n - 1) + b * b / (control.n - 1)
    if not denominator > 0:
        raise StatisticsError("Welch degrees of freedom are undefined when both groups have zero variance")
    return (a + b) ** 2 / denominator


def _require_frequentist_groups(treatment: Group, control: Group) -> None:
    for group in (treatment, control):
        if group.n < FREQUENTIST_MINIMUM_GROUP_SIZE:
            raise StatisticsError("Each group needs at least 5 samples")
        if not (math.isfinite(group.mean) and math.isfinite(group.variance)) or group.variance < 0:
            raise StatisticsError("Group means and variances must be finite and variances non-negative")


def welch_t_test(
    treatment: Group,
    control: Group,
    *,
    alpha: float,
    difference_type: DifferenceType,
    relative_denominator: float | None = None,
) -> FrequentistResult:
    """Two-sided Welch t-test on the effect; p = 2·(1 − F_t(|t|)), computed in that form as PostHog does
    (so it reaches exactly 0.0 for |t| beyond about 8.3)."""
    _require_open_unit_interval(alpha)
    _require_frequentist_groups(treatment, control)
    effect = estimate_effect(treatment, control, difference_type, relative_denominator=relative_denominator)
    _require_usable(effect)
    degrees_of_freedom = welch_degrees_of_freedom(treatment, control)
    standard_error = math.sqrt(effect.variance)
    t_statistic = effect.estimate / standard_error
    p_value = 2.0 * (1.0 - student_t_cdf(abs(t_statistic), degrees_of_freedom))
    critical = student_t_ppf(1.0 - alpha / 2.0, degrees_of_freedom)
    return FrequentistResult(
        effect=effect.estimate,
        p_value=p_value,
        confidence_interval=(
            effect.estimate - critical * standard_error,
            effect.estimate + critical * standard_error,
        ),
        significant=p_value < alpha,
        degrees_of_freedom=degrees_of_freedom,
    )


def sequential_rho(*, alpha: float, tuning_parameter: float) -> float:
    """The mixture's ρ, chosen so the interval is tightest around ``tuning_parameter`` samples."""
    log_alpha_term = -2.0 * math.log(alpha)
    return math.sqrt((log_alpha_term + math.log(log_alpha_term + 1.0)) / tuning_parameter)


def sequential_p_value(
    *, effect: float, variance: float, sample_size: int, tuning_parameter: float, alpha: float
) -> float:
    """Always-valid p-value of the mixture sequential test (1.0 until the evidence outweighs the prior).

    ``variance`` is the variance of the effect estimate; ``sample_size`` is both groups together.
    """
    rho_squared = sequential_rho(alpha=alpha, tuning_parameter=tuning_parameter) ** 2
    t_squared = effect * effect * sample_size / variance
    spread = sample_size * rho_squared + 1.0
    log_evidence = rho_squared * t_squared / (2.0 * spread) - 0.5 * math.log(spread)
    if log_evidence <= 0:
        return 1.0
    return min(math.exp(-log_evidence), 1.0)


def sequential_half_width(
    *, variance: float, sample_size: int, tuning_parameter: float, alpha: float
) -> float:
    """Half-width of the always-valid confidence interval around the effect."""
    rho = sequential_rho(alpha=alpha, tuning_parameter=tuning_parameter)
    spread = sample_size * rho * rho + 1.0
    per_observation_sd = math.sqrt(variance * sample_size)
    return per_observation_sd * math.sqrt(
        2.0 * spread * math.log(math.sqrt(spread) / alpha) / (sample_size * rho) ** 2
    )


def sequential_test(
    treatment: Group,
    control: Group,
    *,
    alpha: float,
    tuning_parameter: int,
    difference_type: DifferenceType,
    relative_denominator: float | None = None,
) -> FrequentistResult:
    """Frequentist test that stays valid however often it is looked at (mixture sequential test)."""
    _require_open_unit_interval(alpha)
    _require_frequentist_groups(treatment, control)
    effect = estimate_effect(treatment, control, difference_type, relative_denominator=relative_denominator)
    _require_usable(effect)
    sample_size = treatment.n + control.n
    p_value = sequential_p_value(
        effect=effect.estimate,
        variance=effect.variance,
        sample_size=sample_size,
        tuning_parameter=tuning_parameter,
        alpha=alpha,
    )
    half_width = sequential_half_width(
        variance=effect.variance, sample_size=sample_size, tuning_parameter=tuning_parameter, alpha=alpha
    )
    return FrequentistResult(
        effect=effect.estimate,
        p_value=p_value,
        confidence_interval=(effect.estimate - half_width, effect.estimate + half_width),
        significant=p_value < alpha,
        degrees_of_freedom=math.nan,
    )

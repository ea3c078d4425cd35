"""From one variant's sufficient statistics to a group's mean and per-observation variance (spec §4.3),
and the CUPED adjustment of a group by its pre-exposure covariate (spec §4.8)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from results.statistics.config import MetricType

# Variances of CUPED-adjusted groups are floored here so a perfectly explained metric still tests.
CUPED_MINIMUM_VARIANCE = 1e-10
# Below this the covariate is treated as constant and CUPED leaves the metric unadjusted.
CUPED_MINIMUM_COVARIATE_VARIANCE = 1e-10
RATIO_MINIMUM_DENOMINATOR_MEAN = 1e-10


class StatisticsError(ValueError):
    """The numbers admit no test (zero variance, impossible sums, ...): that variant gets no statistics."""


@dataclass(frozen=True)
class VariantStatistics:
    """One variant's sufficient statistics, as the metric query returns them.

    ``sum``/``sum_squares`` are over the per-entity values (for funnels and retention: the number of
    converted entities, twice). Ratio and retention metrics fill the ``denominator_*`` and
    ``numerator_denominator_sum_product`` fields; CUPED fills the ``covariate_*`` fields (``Σx``,
    ``Σx²`` and ``Σy·x`` of the pre-exposure covariate x and the post value y).
    """

    key: str
    number_of_samples: int
    sum: float
    sum_squares: float
    step_counts: Sequence[int] | None = None
    denominator_sum: float | None = None
    denominator_sum_squares: float | None = None
    numerator_denominator_sum_product: float | None = None
    covariate_sum: float | None = None
    covariate_sum_squares: float | None = None
    covariate_sum_product: float | None = None

    @property
    def has_covariate(self) -> bool:
        return (
            self.covariate_sum is not None
            and self.covariate_sum_squares is not None
            and self.covariate_sum_product is not None
        )


# Sums only some metric types carry; absent (None) otherwise.
OPTIONAL_SUM_FIELDS = (
    "denominator_sum",
    "denominator_sum_squares",
    "numerator_denominator_sum_product",
    "covariate_sum",
    "covariate_sum_squares",
    "covariate_sum_product",
)


def combine_variant_statistics(key: str, parts: Sequence[VariantStatistics]) -> VariantStatistics:
    """One variant's statistics summed over breakdown buckets (the headline row of a breakdown).

    Counts and sums add up, ``step_counts`` element-wise; an optional sum stays None only if no part
    has it (a zero-filled bucket without it counts as 0).
    """
    step_counts: list[int] | None = None
    for part in parts:
        if part.step_counts is None:
            continue
        counts = list(part.step_counts)
        if step_counts is None:
            step_counts = counts
            continue
        width = max(len(step_counts), len(counts))
        step_counts = [
            (step_counts[i] if i < len(step_counts) else 0) + (counts[i] if i < len(counts) else 0)
            for i in range(width)
        ]
    optional = {}
    for field in OPTIONAL_SUM_FIELDS:
        values = [getattr(part, field) for part in parts]
        if any(value is not None for value in values):
            optional[field] = sum(value for value in values if value is not None)
    return VariantStatistics(
        key=key,
        number_of_samples=sum(part.number_of_samples for part in parts),
        sum=sum(part.sum for part in parts),
        sum_squares=sum(part.sum_squares for part in parts),
        step_counts=step_counts,
        **optional,
    )


@dataclass(frozen=True)
class Group:
    """What the tests need of one group: its size, mean and per-observation variance.

    ``is_proportion`` marks a funnel's conversion rate, for which the Bayesian test demands enough
    successes and failures (``successes`` is then the number of conversions).
    """

    n: int
    mean: float
    variance: float
    is_proportion: bool = False
    successes: int = 0


def _finite(*values: float) -> None:
    for value in values:
        if not math.isfinite(value):
            raise StatisticsError("Sufficient statistics must be finite numbers")


def sample_mean_group(n: int, total: float, sum_squares: float) -> Group:
    """A mean metric: mean s/n, Bessel-corrected variance (q − s²/n)/(n − 1), 0 for a single entity."""
    _finite(n, total, sum_squares)
    if n <= 0:
        raise StatisticsError("Sample size must be positive")
    mean = total / n
    if n == 1:
        return Group(n=n, mean=mean, variance=0.0)
    centred = sum_squares - total * total / n
    # Sums of squares that agree with s²/n up to rounding are a constant metric, not an impossible one.
    if centred < -1e-9 * max(abs(sum_squares), 1.0):
        raise StatisticsError("Sum of squares is smaller than the square of the sum allows")
    return Group(n=n, mean=mean, variance=max(centred, 0.0) / (n - 1))


def proportion_group(n: int, successes: float) -> Group:
    """A funnel's conversion rate p = k/n with variance p(1 − p) (no Bessel correction, as PostHog)."""
    _finite(n, successes)
    k = int(successes)
    if n <= 0 or k < 0 or k > n:
        raise StatisticsError("Successes must be between 0 and the sample size")
    p = k / n
    return Group(n=n, mean=p, variance=p * (1.0 - p), is_proportion=True, successes=k)


def ratio_group(
    n: int,
    numerator_sum: float,
    numerator_sum_squares: float,
    denominator_sum: float,
    denominator_sum_squares: float,
    numerator_denominator_sum_product: float,
) -> Group:
    """A ratio metric Σm/Σd with the delta-method per-observation variance."""
    numerator = sample_mean_group(n, numerator_sum, numerator_sum_squares)
    denominator = sample_mean_group(n, denominator_sum, denominator_sum_squares)
    _finite(numerator_denominator_sum_product)
    if abs(denominator.mean) < RATIO_MINIMUM_DENOMINATOR_MEAN:
        raise StatisticsError("Denominator mean cannot be zero")
    covariance = (
        (numerator_denominator_sum_product - numerator_sum * denominator_sum / n) / (n - 1) if n > 1 else 0.0
    )
    m, d = numerator.mean, denominator.mean
    variance = numerator.variance / d**2 + m**2 * denominator.variance / d**4 - 2.0 * m * covariance / d**3
    return Group(n=n, mean=numerator_sum / denominator_sum, variance=variance)


def build_group(variant: VariantStatistics, metric_type: MetricType) -> Group:
    """The statistic PostHog uses for the metric type: mean, proportion (funnel) or ratio."""
    if metric_type is MetricType.FUNNEL:
        return proportion_group(variant.number_of_samples, variant.sum)
    if metric_type is MetricType.MEAN:
        return sample_mean_group(variant.number_of_samples, variant.sum, variant.sum_squares)
    n = variant.number_of_samples
    if metric_type is MetricType.RETENTION:
        # Retention's denominator is 1 per starter; the engine may leave those columns out.
        return ratio_group(
            n,
            variant.sum,
            variant.sum_squares,
            _or_default(variant.denominator_sum, n),
            _or_default(variant.denominator_sum_squares, n),
            _or_default(variant.numerator_denominator_sum_product, variant.sum),
        )
    if (
        variant.denominator_sum is None
        or variant.denominator_sum_squares is None
        or variant.numerator_denominator_sum_product is None
    ):
        raise StatisticsError("A ratio metric needs denominator sums")
    return ratio_group(
        n,
        variant.sum,
        variant.sum_squares,
        variant.denominator_sum,
        variant.denominator_sum_squares,
        variant.numerator_denominator_sum_product,
    )


def _or_default(value: float | None, default: float) -> float:
    return default if value is None else value


@dataclass(frozen=True)
class CupedAdjustment:
    """One group after CUPED: its adjusted mean and variance, and how much variance was removed."""

    mean: float
    variance: float
    variance_reduction: float
    group: Group


def cuped_theta(treatment: VariantStatistics, control: VariantStatistics) -> float:
    """θ = Cov(y, x)/Var(x) over the pooled pair; 0 when the covariate is (nearly) constant."""
    n = treatment.number_of_samples + control.number_of_samples
    if n <= 1:
        return 0.0
    x_sum = _covariate(treatment.covariate_sum) + _covariate(control.covariate_sum)
    x_sum_squares = _covariate(treatment.covariate_sum_squares) + _covariate(control.covariate_sum_squares)
    y_sum = treatment.sum + control.sum
    yx_sum = _covariate(treatment.covariate_sum_product) + _covariate(control.covariate_sum_product)
    _finite(x_sum, x_sum_squares, y_sum, yx_sum)
    covariate_variance = (x_sum_squares - x_sum * x_sum / n) / (n - 1)
    if covariate_variance < CUPED_MINIMUM_COVARIATE_VARIANCE:
        return 0.0
    covariance = (yx_sum - y_sum * x_sum / n) / (n - 1)
    return covariance / covariate_variance


def _covariate(value: float | None) -> float:
    if value is None:
        raise StatisticsError("CUPED needs the covariate sums")
    return value


def covariate_covariance(variant: VariantStatistics) -> float:
    """The group's own Cov(y, x), Bessel-corrected; 0 for a single entity."""
    n = variant.number_of_samples
    if n <= 1:
        return 0.0
    return (
        _covariate(variant.covariate_sum_product) - variant.sum * _covariate(variant.covariate_sum) / n
    ) / (n - 1)


def cuped_adjust(post: Group, variant: VariantStatistics, theta: float) -> CupedAdjustment:
    """Adjust a group by θ: mean μ_y − θ·μ_x, variance σ_y² + θ²σ_x² − 2θ·Cov(y, x), floored.

    The result is always a mean group, so an adjusted funnel is tested as a mean.
    """
    pre = sample_mean_group(
        variant.number_of_samples,
        _covariate(variant.covariate_sum),
        _covariate(variant.covariate_sum_squares),
    )
    covariance = covariate_covariance(variant)
    mean = post.mean - theta * pre.mean
    raw_variance = post.variance + theta * theta * pre.variance - 2.0 * theta * covariance
    variance = max(raw_variance, CUPED_MINIMUM_VARIANCE)
    reduction = 1.0 - variance / post.variance if post.variance > 0 else 0.0
    return CupedAdjustment(
        mean=mean,
        variance=variance,
        variance_reduction=reduction,
        group=Group(n=post.n, mean=mean, variance=variance),
    )

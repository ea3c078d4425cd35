"""Names and settings shared by the statistics: metric types, methods, and the resolved ``stats_config``
(spec §4.1, §3.8)."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

UNABLE_TO_CALCULATE_MESSAGE = "Unable to calculate experiment statistics. Please ensure your experiment has sufficient data and try again."

DEFAULT_CI_LEVEL = 0.95
DEFAULT_ALPHA = 0.05
DEFAULT_SEQUENTIAL_TUNING_PARAMETER = 5000
SEQUENTIAL_TUNING_PARAMETER_RANGE = (1, 1_000_000_000)
DEFAULT_CUPED_LOOKBACK_DAYS = 14
CUPED_LOOKBACK_DAYS_RANGE = (1, 30)


class ExperimentStatisticsError(ValueError):
    """The configuration makes statistics impossible (ci_level or alpha of exactly 0 or 1).

    PostHog answers these with a 400 carrying ``UNABLE_TO_CALCULATE_MESSAGE``.
    """

    def __init__(self, message: str = UNABLE_TO_CALCULATE_MESSAGE) -> None:
        super().__init__(message)


class MetricType(enum.StrEnum):
    MEAN = "mean"
    FUNNEL = "funnel"
    RATIO = "ratio"
    RETENTION = "retention"


class StatsMethod(enum.StrEnum):
    BAYESIAN = "bayesian"
    FREQUENTIST = "frequentist"


class DifferenceType(enum.StrEnum):
    RELATIVE = "relative"
    ABSOLUTE = "absolute"


class ValidationFailure(enum.StrEnum):
    NOT_ENOUGH_EXPOSURES = "not-enough-exposures"
    BASELINE_MEAN_IS_ZERO = "baseline-mean-is-zero"
    NOT_ENOUGH_METRIC_DATA = "not-enough-metric-data"


@dataclass(frozen=True)
class StatsConfig:
    """An experiment's statistics settings after PostHog's defaults and fall-backs.

    ``ci_level`` is the Bayesian credible level, ``alpha`` the frequentist significance level; only the
    one of the chosen ``method`` is used. ``cuped_enabled``/``cuped_lookback_days`` tell the engine
    whether to collect covariates; the statistics apply CUPED when enabled and the sums are present.
    """

    method: StatsMethod = StatsMethod.BAYESIAN
    ci_level: float = DEFAULT_CI_LEVEL
    alpha: float = DEFAULT_ALPHA
    difference_type: DifferenceType = DifferenceType.RELATIVE
    sequential_testing_enabled: bool = False
    sequential_tuning_parameter: int = DEFAULT_SEQUENTIAL_TUNING_PARAMETER
    cuped_enabled: bool = False
    cuped_lookback_days: int = DEFAULT_CUPED_LOOKBACK_DAYS


def _section(stats_config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = stats_config.get(name)
    return value if isinstance(value, Mapping) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _probability_or_default(value: Any, default: float) -> float:
    # PostHog keeps 0 and 1 here (they pass the range check) and fails later; so do we.
    return float(value) if _is_number(value) and 0 <= value <= 1 else default


def _integer_in_range(value: Any, bounds: tuple[int, int]) -> int | None:
    if not _is_number(value) or value != int(value):
        return None
    low, high = bounds
    return int(value) if low <= value <= high else None


def _clamped_lookback_days(value: Any) -> int | None:
    # PostHog parses the value as an integer (numeric strings included, as Python's `int` reads
    # them) and clamps it into range. A string `int` cannot read — a superscript digit passes
    # `isdigit`, a doubled sign, thousands of digits — falls through like any invalid value.
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            return None
    if not _is_number(value):
        return None
    low, high = CUPED_LOOKBACK_DAYS_RANGE
    return min(max(int(value), low), high)


def _difference_type(section: Mapping[str, Any]) -> DifferenceType:
    # PostHog parses the enum by member name, so only the upper-case "ABSOLUTE" selects absolute.
    return (
        DifferenceType.ABSOLUTE if section.get("difference_type") == "ABSOLUTE" else DifferenceType.RELATIVE
    )


def resolve_stats_config(
    stats_config: Any,
    *,
    default_sequential_testing_enabled: bool = False,
    default_sequential_tuning_parameter: Any = None,
    default_cuped_enabled: bool = False,
    default_cuped_lookback_days: Any = None,
) -> StatsConfig:
    """Resolve ``experiment.stats_config`` (any JSON value) with the team defaults; never raises.

    Unknown or malformed values fall back to the next level (experiment → team → PostHog default),
    exactly where PostHog falls back.
    """
    config: Mapping[str, Any] = stats_config if isinstance(stats_config, Mapping) else {}
    method = StatsMethod.FREQUENTIST if config.get("method") == "frequentist" else StatsMethod.BAYESIAN
    bayesian = _section(config, "bayesian")
    frequentist = _section(config, "frequentist")
    cuped = _section(config, "cuped")

    sequential_enabled = frequentist.get("sequential_testing_enabled")
    if not isinstance(sequential_enabled, bool):
        sequential_enabled = bool(default_sequential_testing_enabled)
    tuning_parameter = next(
        (
            resolved
            for candidate in (
                frequentist.get("sequential_tuning_parameter"),
                default_sequential_tuning_parameter,
            )
            if (resolved := _integer_in_range(candidate, SEQUENTIAL_TUNING_PARAMETER_RANGE)) is not None
        ),
        DEFAULT_SEQUENTIAL_TUNING_PARAMETER,
    )

    # An explicit experiment value, even false, beats the team default.
    cuped_enabled = bool(cuped["enabled"]) if "enabled" in cuped else bool(default_cuped_enabled)
    lookback_days = next(
        (
            resolved
            for candidate in (cuped.get("lookback_days"), default_cuped_lookback_days)
            if (resolved := _clamped_lookback_days(candidate)) is not None
        ),
        DEFAULT_CUPED_LOOKBACK_DAYS,
    )

    return StatsConfig(
        method=method,
        ci_level=_probability_or_default(bayesian.get("ci_level"), DEFAULT_CI_LEVEL),
        alpha=_probability_or_default(frequentist.get("alpha"), DEFAULT_ALPHA),
        difference_type=_difference_type(frequentist if method is StatsMethod.FREQUENTIST else bayesian),
        sequential_testing_enabled=sequential_enabled,
        sequential_tuning_parameter=tuning_parameter,
        cuped_enabled=cuped_enabled,
        cuped_lookback_days=lookback_days,
    )

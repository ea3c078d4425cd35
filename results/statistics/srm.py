"""Sample ratio mismatch: do the exposure counts fit the configured split? (spec §6)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from results.statistics.distributions import chi_square_survival

MULTIPLE_VARIANT_KEY = "$multiple"
SRM_MINIMUM_EXPOSURES = 100
# Below this p-value the split is flagged ("Users are not split across variants as configured").
SRM_P_VALUE_THRESHOLD = 0.001


def sample_ratio_mismatch(
    *,
    observed_counts: Mapping[str, int],
    rollout_percentages: Mapping[str, float],
    excluded_variants: Collection[str] = (),
) -> dict[str, Any] | None:
    """Pearson chi-square goodness of fit of the exposure counts to the flag's variant split.

    ``rollout_percentages`` are the flag's variant percentages. A holdout needs no adjustment: it
    scales every variant alike and the expected counts are normalised to the observed total anyway.
    Excluded variants, 0% variants and ``$multiple`` are left out. Returns
    ``{"expected": {variant: count}, "p_value": p}``, or None with fewer than two variants or fewer
    than 100 exposures among them.
    """
    weights = {
        variant: float(percentage)
        for variant, percentage in rollout_percentages.items()
        if variant != MULTIPLE_VARIANT_KEY
        and variant not in excluded_variants
        and isinstance(percentage, int | float)
        and math.isfinite(percentage)
        and percentage > 0
    }
    if len(weights) < 2:
        return None
    observed = {variant: max(int(observed_counts.get(variant, 0) or 0), 0) for variant in weights}
    total = sum(observed.values())
    if total < SRM_MINIMUM_EXPOSURES:
        return None
    weight_total = sum(weights.values())
    expected = {variant: weight / weight_total * total for variant, weight in weights.items()}
    statistic = sum((observed[variant] - expected[variant]) ** 2 / expected[variant] for variant in weights)
    return {"expected": expected, "p_value": chi_square_survival(statistic, len(weights) - 1)}

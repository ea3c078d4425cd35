"""What both engines compute, whatever their SQL dialect: the windows a metric reads events in,
the rules for reading property values, and the shape of their answer.

Each engine writes its own SQL, but reads events over the same spans (from these functions) and
returns one row per variant in the same column order, which `variant_statistics` turns into
`VariantStatistics` for both.
"""

from datetime import timedelta

from results.engines.base import (
    EventSelector,
    FunnelMetric,
    MeanMetric,
    MetricDefinition,
    RatioMetric,
    RetentionMetric,
)
from results.statistics import VariantStatistics

# PostHog runs funnels without a conversion window with a three-year one.
DEFAULT_FUNNEL_WINDOW = timedelta(days=3 * 365)
# `$session_id` values that mean "no session".
EMPTY_SESSION_IDS = ("", "00000000-0000-0000-0000-000000000000")
# A property read as a number: JSON numbers with |x| below `MAX_ABS_NUMBER` (whose square cannot
# overflow) and strings of this shape; anything else is NULL, which the metric maths treat as 0.
NUMERIC_STRING = r"^\s*[-+]?[0-9]{1,90}(\.[0-9]{1,90})?\s*$"
MAX_ABS_NUMBER = 1e100
NUMBER_COMPARISONS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}

RATIO_SUMS = (
    "sum",
    "sum_squares",
    "denominator_sum",
    "denominator_sum_squares",
    "numerator_denominator_sum_product",
)

RETENTION_UNIT_SECONDS = {"hour": 3600, "day": 86400, "week": 604800, "month": 2592000}
# PostHog lets a completion run this far past the window's end before truncation decides.
RETENTION_BUFFERS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def as_text_values(value: object) -> list[str]:
    """A filter value (one or a list) as the texts a property is compared with (booleans as JSON)."""
    values = value if isinstance(value, list) else [value]
    return [str(item).lower() if isinstance(item, bool) else str(item) for item in values if item is not None]


def conversion_window(metric: MetricDefinition) -> timedelta:
    """How long after an entity's last exposure its metric events count (0: until the window end)."""
    return timedelta(seconds=metric.conversion_window_seconds)


def funnel_window(metric: FunnelMetric) -> timedelta:
    """How long after a path's start its steps may come."""
    return conversion_window(metric) or DEFAULT_FUNNEL_WINDOW


def cuped_lookback(metric: MeanMetric | FunnelMetric) -> timedelta | None:
    """How far before its first exposure an entity's CUPED covariate is read (None: no CUPED)."""
    return timedelta(days=metric.cuped_lookback_days) if metric.cuped_lookback_days else None


def retention_span(metric: RetentionMetric) -> timedelta:
    """From a start to the end of its retention window: a start is matured this long after it."""
    return timedelta(seconds=metric.window_end * RETENTION_UNIT_SECONDS[metric.unit])


def retention_reach(metric: RetentionMetric) -> timedelta:
    """How long after a start a completion event is looked at, before calendar truncation decides."""
    return retention_span(metric) + RETENTION_BUFFERS.get(metric.unit, timedelta(0))


def metric_selectors(metric: MetricDefinition) -> list[EventSelector]:
    """Every kind of event the metric reads."""
    if isinstance(metric, MeanMetric):
        return [metric.value.selector]
    if isinstance(metric, RatioMetric):
        return [metric.numerator.selector, metric.denominator.selector]
    if isinstance(metric, FunnelMetric):
        return list(metric.steps)
    return [metric.start, metric.completion]


def variant_statistics(metric: MetricDefinition, rows: list[tuple]) -> list[VariantStatistics]:
    """An engine's per-variant rows as `VariantStatistics`. A row is the variant, its number of
    entities, then the sums of the metric's kind (`variant_sums`)."""
    return [
        VariantStatistics(key=row[0], number_of_samples=row[1], **variant_sums(metric, row)) for row in rows
    ]


def variant_sums(metric: MetricDefinition, row: tuple) -> dict[str, object]:
    """The sums of a row after its variant and entity count, by `VariantStatistics` field: mean: sum,
    sum of squares, the three CUPED sums; ratio: `RATIO_SUMS`; retention: entities retained; funnel:
    entities reaching each step, the three CUPED sums of completing the last step."""
    if isinstance(metric, MeanMetric):
        return {"sum": row[2], "sum_squares": row[3], **covariate_fields(row[4:7])}
    if isinstance(metric, RatioMetric):
        return dict(zip(RATIO_SUMS, row[2:7], strict=True))
    if isinstance(metric, RetentionMetric):
        # Retained (0 or 1, so its own square) over a denominator of 1 per entity.
        retained, entities = float(row[2]), float(row[1])
        return {
            "sum": retained,
            "sum_squares": retained,
            "denominator_sum": entities,
            "denominator_sum_squares": entities,
            "numerator_denominator_sum_product": retained,
        }
    steps = len(metric.steps)
    # Completing the funnel is 0 or 1, so its own square.
    completed = float(row[1 + steps])
    return {
        "sum": completed,
        "sum_squares": completed,
        "step_counts": list(row[2 : 2 + steps]),
        **covariate_fields(row[2 + steps : 5 + steps]),
    }


def covariate_fields(sums: tuple) -> dict[str, float]:
    """The CUPED sums of a result row, or nothing when no covariate was collected (NULL sums)."""
    if sums[0] is None:
        return {}
    return {"covariate_sum": sums[0], "covariate_sum_squares": sums[1], "covariate_sum_product": sums[2]}

"""What a results engine is given and what it returns.

An engine turns stored events into per-variant sufficient statistics: the exposure rules and the
metric definition come in as plain frozen dataclasses (already validated, no Django models), and
only counts and sums go out. Everything PostHog does in Python after its SQL (dropping `$multiple`,
zero-filling, validation, statistics) happens above the engine, so a ClickHouse engine only has to
answer the same two questions with the same numbers.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from results.statistics import VariantStatistics

MULTIPLE_VARIANTS_KEY = "$multiple"


@dataclass(frozen=True)
class PropertyFilter:
    """One event-property condition, e.g. `plan exact ["pro"]`. Operators: see `SUPPORTED_OPERATORS`."""

    key: str
    operator: str
    value: object = None


SUPPORTED_OPERATORS = (
    "exact",
    "is_not",
    "is_set",
    "is_not_set",
    "icontains",
    "not_icontains",
    "gt",
    "gte",
    "lt",
    "lte",
)


@dataclass(frozen=True)
class EventSelector:
    """Which events count: one event name (None: every event) AND all property filters."""

    event: str | None
    properties: tuple[PropertyFilter, ...] = ()


@dataclass(frozen=True)
class ExposureDefinition:
    """Who was exposed to which variant, and when (PostHog's exposure rules, spec §2).

    An exposure is an event matching `selector`, inside `[date_from, date_to]` (both inclusive),
    whose `variant_property` is one of `variants`. Entities are `distinct_id`s, or the key of
    `group_type` in the event's `$groups` for group-aggregated flags. An entity seen with several
    variants is `$multiple` under `exclude` handling, or keeps its first variant under `first_seen`.
    """

    project_id: int
    selector: EventSelector
    variant_property: str
    variants: tuple[str, ...]
    date_from: datetime
    date_to: datetime
    multiple_variant_handling: str = "exclude"
    group_type: str | None = None


@dataclass(frozen=True)
class EntityValue:
    """How one number per exposed entity is computed from its metric events (spec §3.1–3.2)."""

    selector: EventSelector
    math: str = "total"
    math_property: str | None = None
    math_group_type: str | None = None
    threshold: float | None = None
    lower_bound_percentile: float | None = None
    upper_bound_percentile: float | None = None
    ignore_zeros: bool = False


@dataclass(frozen=True)
class MeanMetric:
    """`cuped_lookback_days` (None: off) asks for the CUPED covariate: the same value computed over
    the entity's events in the days before its first exposure."""

    value: EntityValue
    conversion_window_seconds: int = 0
    cuped_lookback_days: int | None = None


@dataclass(frozen=True)
class RatioMetric:
    numerator: EntityValue
    denominator: EntityValue
    conversion_window_seconds: int = 0


@dataclass(frozen=True)
class FunnelMetric:
    """A funnel whose step 0 is the exposure itself; `steps` are steps 1..N, in `order` "ordered"
    (other events may come between steps) or "strict" (each step is the entity's next funnel event).
    Its CUPED covariate is whether the entity did the last step in the days before its first
    exposure."""

    steps: tuple[EventSelector, ...]
    conversion_window_seconds: int = 0
    cuped_lookback_days: int | None = None
    order: str = "ordered"


@dataclass(frozen=True)
class RetentionMetric:
    """Of the exposed entities that did `start` (after their first exposure), how many did
    `completion` between `window_start` and `window_end` units later (both inclusive; day and hour
    units compare calendar days / hours in `timezone`). `start_handling` picks the first or last
    start. With `matured_at`, only entities whose start is a whole retention window before it count."""

    start: EventSelector
    completion: EventSelector
    window_start: int
    window_end: int
    unit: str
    start_handling: str = "first_seen"
    conversion_window_seconds: int = 0
    timezone: str = "UTC"
    matured_at: datetime | None = None


MetricDefinition = MeanMetric | RatioMetric | FunnelMetric | RetentionMetric


@dataclass(frozen=True)
class DailyExposures:
    """How many entities had their first exposure on `day` (project timezone) in `variant`."""

    day: date
    variant: str
    entities: int


class ResultsEngine(Protocol):
    def metric_statistics(
        self, *, exposure: ExposureDefinition, metric: MetricDefinition, matured_before: datetime | None
    ) -> list[VariantStatistics]:
        """Statistics for every variant with at least one exposed entity, `$multiple` excluded.

        `matured_before`, when set, keeps only entities whose last exposure is at or before it."""
        ...

    def daily_first_exposures(self, *, exposure: ExposureDefinition, timezone: str) -> list[DailyExposures]:
        """Entities counted once, on the day of their first exposure; `$multiple` included."""
        ...

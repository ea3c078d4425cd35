"""The picture of an experiment's results on its admin page, drawn server-side.

Built from the newest finished metrics recalculation (nothing is computed on page load): per
metric, each variant's samples, mean, chance to win or p-value and interval, with the intervals
drawn as an SVG forest plot around zero; the cumulative exposures per variant over time as an SVG
line chart; and a warning when the split does not match the configuration (sample ratio mismatch).
Coordinates are computed here; `admin/results/experiment_results.html` only places them.
"""

from dataclasses import dataclass, field
from typing import Any

from experiments.models import Experiment, ExperimentMetricsRecalculation
from results.statistics.srm import SRM_P_VALUE_THRESHOLD

CHART_WIDTH = 560
LABEL_WIDTH = 110
ROW_HEIGHT = 28
LINE_CHART_HEIGHT = 180
PALETTE = ("#1d4aff", "#f7a501", "#29a347", "#e03e3e", "#9b59b6", "#2bbbad", "#8e6e53", "#666666")
POSITIVE, NEGATIVE, NEUTRAL = "#29a347", "#e03e3e", "#8a8a8a"


@dataclass
class VariantRow:
    key: str
    samples: int
    mean: float | None
    is_baseline: bool
    method: str | None = None
    chance_to_win: float | None = None
    p_value: float | None = None
    interval: tuple[float, float] | None = None
    significant: bool = False
    # The interval bar in the chart: x from / to, y of the row, and its colour.
    x1: float = 0
    x2: float = 0
    y: float = 0
    color: str = NEUTRAL

    @property
    def chance_to_win_text(self) -> str:
        return "" if self.chance_to_win is None else f"{self.chance_to_win:.1%}"

    @property
    def p_value_text(self) -> str:
        return "" if self.p_value is None else f"{self.p_value:.4f}"

    @property
    def interval_text(self) -> str:
        return "" if self.interval is None else f"[{self.interval[0]:+.1%}, {self.interval[1]:+.1%}]"

    @property
    def mean_text(self) -> str:
        return "–" if self.mean is None else f"{self.mean:.4g}"


@dataclass
class MetricPicture:
    uuid: str
    name: str
    status: str
    error: str | None
    rows: list[VariantRow] = field(default_factory=list)
    validation_failures: list[str] = field(default_factory=list)
    zero_x: float = 0
    ticks: list[tuple[float, str]] = field(default_factory=list)
    height: int = 0

    @property
    def charted(self) -> list[VariantRow]:
        return [row for row in self.rows if row.interval is not None]


@dataclass
class ExposureLine:
    variant: str
    color: str
    points: str
    total: int


@dataclass
class ExposurePicture:
    lines: list[ExposureLine]
    first_day: str
    last_day: str
    maximum: int
    srm_p_value: float | None
    srm_flagged: bool
    expected: dict[str, float]

    @property
    def srm_p_value_text(self) -> str:
        return "" if self.srm_p_value is None else f"{self.srm_p_value:.2g}"


def metric_name(metric: dict[str, Any]) -> str:
    if metric.get("name"):
        return str(metric["name"])
    source = metric.get("source") or {}
    numerator = metric.get("numerator") or {}
    return str(
        source.get("event") or source.get("name") or numerator.get("event") or metric.get("metric_type")
    )


def mean_of(statistics: dict[str, Any]) -> float | None:
    samples = statistics.get("number_of_samples") or 0
    return statistics.get("sum", 0) / samples if samples else None


def variant_rows(result: dict[str, Any]) -> list[VariantRow]:
    baseline = result.get("baseline") or {}
    rows = [
        VariantRow(
            key=str(baseline.get("key")),
            samples=baseline.get("number_of_samples") or 0,
            mean=mean_of(baseline),
            is_baseline=True,
        )
    ]
    for variant in result.get("variant_results") or []:
        interval = variant.get("credible_interval") or variant.get("confidence_interval")
        rows.append(
            VariantRow(
                key=str(variant.get("key")),
                samples=variant.get("number_of_samples") or 0,
                mean=mean_of(variant),
                is_baseline=False,
                method=variant.get("method"),
                chance_to_win=variant.get("chance_to_win"),
                p_value=variant.get("p_value"),
                interval=(float(interval[0]), float(interval[1]))
                if interval and len(interval) == 2
                else None,
                significant=bool(variant.get("significant")),
            )
        )
    return rows


def place_intervals(picture: MetricPicture) -> None:
    """Scale the intervals onto the chart: zero always visible, 10% padding either side."""
    charted = picture.charted
    picture.height = ROW_HEIGHT * (len(charted) + 1)
    if not charted:
        return
    low = min(0.0, *(row.interval[0] for row in charted))
    high = max(0.0, *(row.interval[1] for row in charted))
    padding = (high - low) * 0.1 or 0.05
    low, high = low - padding, high + padding
    # Room on the right for the last tick's label.
    plot_width = CHART_WIDTH - LABEL_WIDTH - 30

    def x(value: float) -> float:
        return round(LABEL_WIDTH + (value - low) / (high - low) * plot_width, 1)

    picture.zero_x = x(0.0)
    picture.ticks = [
        (x(value), f"{value:+.0%}") for value in (low + (high - low) * step / 4 for step in range(5))
    ]
    for index, row in enumerate(charted):
        row.x1, row.x2 = x(row.interval[0]), x(row.interval[1])
        row.y = ROW_HEIGHT * (index + 0.5)
        if row.significant:
            row.color = POSITIVE if row.interval[0] > 0 else NEGATIVE


def metric_pictures(recalculation: ExperimentMetricsRecalculation) -> list[MetricPicture]:
    results = {
        row.metric_uuid: row
        for row in recalculation.experiment.metric_results.filter(
            query_to=recalculation.query_to, metric_uuid__in=recalculation.metric_uuids
        )
    }
    pictures = []
    for metric in recalculation.metrics:
        stored = results.get(metric["uuid"])
        picture = MetricPicture(
            uuid=metric["uuid"],
            name=metric_name(metric),
            status=stored.status if stored else "pending",
            error=stored.error_message if stored else None,
        )
        if stored is not None and isinstance(stored.result, dict):
            picture.rows = variant_rows(stored.result)
            picture.validation_failures = sorted(
                {
                    failure
                    for part in [
                        stored.result.get("baseline") or {},
                        *(stored.result.get("variant_results") or []),
                    ]
                    for failure in part.get("validation_failures") or []
                }
            )
            place_intervals(picture)
        pictures.append(picture)
    return pictures


def exposure_picture(exposures: dict[str, Any] | None) -> ExposurePicture | None:
    if not exposures or not exposures.get("timeseries"):
        return None
    series = exposures["timeseries"]
    days = series[0].get("days") or []
    maximum = max((max(line.get("exposure_counts") or [0]) for line in series), default=0)
    plot_width = CHART_WIDTH - 40
    lines = []
    for index, line in enumerate(series):
        counts = line.get("exposure_counts") or []
        step = plot_width / max(len(counts) - 1, 1)
        points = " ".join(
            f"{round(40 + position * step, 1)},"
            f"{round(LINE_CHART_HEIGHT - 20 - (count / maximum if maximum else 0) * (LINE_CHART_HEIGHT - 30), 1)}"
            for position, count in enumerate(counts)
        )
        lines.append(
            ExposureLine(
                variant=str(line.get("variant")),
                color=PALETTE[index % len(PALETTE)],
                points=points,
                total=counts[-1] if counts else 0,
            )
        )
    srm = exposures.get("sample_ratio_mismatch") or {}
    p_value = srm.get("p_value")
    return ExposurePicture(
        lines=lines,
        first_day=days[0] if days else "",
        last_day=days[-1] if days else "",
        maximum=maximum,
        srm_p_value=p_value,
        srm_flagged=p_value is not None and p_value < SRM_P_VALUE_THRESHOLD,
        expected={key: round(value, 1) for key, value in (srm.get("expected") or {}).items()},
    )


def experiment_results_context(experiment: Experiment) -> dict[str, Any]:
    """What the admin's results section shows: the newest finished recalculation's metrics and
    exposures, and whether a newer one is running."""
    recalculations = experiment.metrics_recalculations.order_by("-created_at")
    finished = recalculations.exclude(status__in=ExperimentMetricsRecalculation.ACTIVE_STATUSES).first()
    active = recalculations.filter(status__in=ExperimentMetricsRecalculation.ACTIVE_STATUSES).first()
    return {
        "experiment": experiment,
        "recalculation": finished,
        "active": active,
        "metrics": metric_pictures(finished) if finished else [],
        "exposures": exposure_picture(finished.exposures) if finished else None,
        "chart_width": CHART_WIDTH,
        "label_width": LABEL_WIDTH,
        "line_chart_height": LINE_CHART_HEIGHT,
    }

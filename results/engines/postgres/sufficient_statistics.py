"""The PostgreSQL engine's last step: per-variant sufficient statistics over entity rows.

The rows come fresh from `metrics.entity_rows_query` or from a rollup's stored rows; maturity,
threshold and winsorization are applied here, so both give the same numbers. The columns of the
answer are those `plan.variant_statistics` reads.
"""

from datetime import datetime

from results.engines.base import (
    EntityValue,
    FunnelMetric,
    MeanMetric,
    MetricDefinition,
    RatioMetric,
    RetentionMetric,
)
from results.engines.plan import retention_span
from results.engines.postgres.metrics import ENTITY_ROW_COLUMNS
from results.engines.postgres.sql import Sql


def bounds_cte(sql: Sql, name: str, column: str, value: EntityValue) -> str:
    """Winsorization bounds of `column` over `kept_rows` as CTE `name`; returns the clamped column."""
    if value.lower_bound_percentile is None and value.upper_bound_percentile is None:
        return column
    # ClickHouse's quantileExact(level): the element at 0-based index floor(level * n) of the sorted
    # values (the last one at level 1), pooled over every variant.
    sql.add(f", {name} AS (SELECT ")
    if value.lower_bound_percentile is None:
        sql.add("NULL::float8")
    else:
        sql.add(
            f"(array_agg({column} ORDER BY {column}))[least(floor(%s * count(*))::bigint, count(*) - 1) + 1]",
            value.lower_bound_percentile,
        )
    sql.add(" AS lower_bound, ")
    if value.upper_bound_percentile is None:
        sql.add("NULL::float8")
    else:
        kept = f"FILTER (WHERE {column} <> 0)" if value.ignore_zeros else ""
        sql.add(
            f"(array_agg({column} ORDER BY {column}) {kept})"
            f"[least(floor(%s * count(*) {kept})::bigint, count(*) {kept} - 1) + 1]",
            value.upper_bound_percentile,
        )
    sql.add(" AS upper_bound FROM kept_rows)")
    return f"least(greatest({column}, {name}.lower_bound), {name}.upper_bound)"


# NULL when no covariate was collected, so the statistics know CUPED has nothing to work with.
COVARIATE_SUMS = "sum({covariate}), sum({covariate} * {covariate}), sum({value} * {covariate})"


def statistics_query(rows: Sql, metric: MetricDefinition, matured_before: datetime | None) -> Sql:
    """Per-variant sufficient statistics over entity rows (`rows` selects `ENTITY_ROW_COLUMNS`):
    maturity, threshold and winsorization are applied here, so stored rows and a fresh computation
    give the same numbers."""
    sql = Sql().add("WITH entity_rows (" + ", ".join(ENTITY_ROW_COLUMNS) + ") AS (").extend(rows)
    if isinstance(metric, MeanMetric) and metric.value.threshold is not None:
        columns = [
            column if column != "value" else "CASE WHEN value >= %s THEN 1.0 ELSE 0.0 END"
            for column in ENTITY_ROW_COLUMNS
        ]
        sql.add(
            "), kept_rows (" + ", ".join(ENTITY_ROW_COLUMNS) + ") AS (SELECT " + ", ".join(columns),
            metric.value.threshold,
        )
        sql.add(" FROM entity_rows")
    else:
        sql.add("), kept_rows AS (SELECT * FROM entity_rows")
    if isinstance(metric, RetentionMetric):
        if metric.matured_at is not None:
            sql.add(" WHERE started_at + %s <= %s", retention_span(metric), metric.matured_at)
    elif matured_before is not None:
        sql.add(" WHERE last_at <= %s", matured_before)
    sql.add(")")
    joins = ""
    if isinstance(metric, MeanMetric):
        value = bounds_cte(sql, "value_bounds", "value", metric.value)
        joins = " CROSS JOIN value_bounds" if "value_bounds" in value else ""
        sql.add(
            f" SELECT variant, count(*), coalesce(sum({value}), 0), coalesce(sum({value} * {value}), 0),"
            f" {COVARIATE_SUMS.format(value=value, covariate='covariate')} FROM kept_rows{joins} GROUP BY variant"
        )
    elif isinstance(metric, RatioMetric):
        numerator = bounds_cte(sql, "numerator_bounds", "value", metric.numerator)
        denominator = bounds_cte(sql, "denominator_bounds", "denominator", metric.denominator)
        for name in ("numerator_bounds", "denominator_bounds"):
            if name in numerator or name in denominator:
                joins += f" CROSS JOIN {name}"
        sql.add(
            f" SELECT variant, count(*), coalesce(sum({numerator}), 0), coalesce(sum({numerator} * {numerator}), 0),"
            f" coalesce(sum({denominator}), 0), coalesce(sum({denominator} * {denominator}), 0),"
            f" coalesce(sum({numerator} * {denominator}), 0) FROM kept_rows{joins} GROUP BY variant"
        )
    elif isinstance(metric, FunnelMetric):
        steps = len(metric.steps)
        completed = f"(CASE WHEN value >= {steps} THEN 1.0 ELSE 0.0 END)"
        sql.add(
            " SELECT variant, count(*), "
            + "".join(f"count(*) FILTER (WHERE value >= {index}), " for index in range(1, steps + 1))
            + COVARIATE_SUMS.format(value=completed, covariate="covariate")
            + " FROM kept_rows GROUP BY variant"
        )
    else:
        sql.add(
            " SELECT variant, count(*), count(*) FILTER (WHERE value >= 1) FROM kept_rows GROUP BY variant"
        )
    return sql

"""Funnel entity rows for the PostgreSQL engine: per exposure, how far along the steps it got."""

from datetime import timedelta

from results.engines.base import MULTIPLE_VARIANTS_KEY, ExposureDefinition, FunnelMetric
from results.engines.plan import cuped_lookback, funnel_window
from results.engines.postgres.sql import EntityScope, Sql, entity_expression, selector_conditions


def funnel_rows(
    sql: Sql, exposure: ExposureDefinition, metric: FunnelMetric, scope: EntityScope | None
) -> None:
    """Every exposure starts a path; each step is the earliest matching event (not the previous
    step's own event) at or after the previous step and within the window of the path's start
    (for strict funnels: the entity's very next funnel event); an entity's value is the furthest
    step any of its paths reached."""
    window = funnel_window(metric)
    step_count = len(metric.steps)
    for index, step in enumerate(metric.steps, start=1):
        sql.add(f", step_{index}_events AS (SELECT ")
        entity_expression(sql, exposure.group_type, "m")
        sql.add(" AS entity, m.id, m.timestamp FROM events_event m WHERE ")
        selector_conditions(sql, exposure.project_id, step, "m", scope)
        sql.add(
            " AND m.timestamp >= %s AND m.timestamp <= %s)", exposure.date_from, exposure.date_to + window
        )
    reached = (
        "CASE"
        + "".join(f" WHEN s{index}.id IS NOT NULL THEN {index}" for index in range(step_count, 0, -1))
        + " ELSE 0 END AS reached"
    )
    if metric.order == "strict":
        strict_paths(sql, step_count, window, reached)
    else:
        sql.add(
            f", paths AS (SELECT x.entity, x.variant, x.first_at, x.last_at, {reached}"
            " FROM exposures x JOIN exposure_events s0 ON s0.entity = x.entity"
        )
        for index in range(1, step_count + 1):
            previous = f"s{index - 1}"
            sql.add(
                f" LEFT JOIN LATERAL (SELECT m.id, m.timestamp FROM step_{index}_events m"
                f" WHERE m.entity = x.entity AND m.timestamp >= {previous}.timestamp AND m.id <> {previous}.id"
                " AND m.timestamp <= s0.timestamp + %s ORDER BY m.timestamp, m.id LIMIT 1)"
                f" s{index} ON true",
                window,
            )
    sql.add(
        " WHERE x.variant <> %s), entity_steps AS (SELECT entity, variant, first_at, last_at,"
        " max(reached) AS reached FROM paths GROUP BY entity, variant, first_at, last_at)"
        " SELECT e.entity, e.variant, e.first_at, e.last_at, e.reached::float8, NULL::float8, ",
        MULTIPLE_VARIANTS_KEY,
    )
    lookback = cuped_lookback(metric)
    if lookback:
        sql.add("CASE WHEN EXISTS (SELECT 1 FROM events_event m WHERE ")
        selector_conditions(sql, exposure.project_id, metric.steps[-1], "m")
        sql.add(" AND ")
        entity_expression(sql, exposure.group_type, "m")
        sql.add(
            " = e.entity AND m.timestamp >= e.first_at - %s AND m.timestamp < e.first_at) THEN 1.0 ELSE 0.0 END",
            lookback,
        )
    else:
        sql.add("NULL::float8")
    sql.add(", NULL::timestamptz FROM entity_steps e")


def strict_paths(sql: Sql, step_count: int, window: timedelta, reached: str) -> None:
    """`paths` of a strict funnel: the entity's exposures and step events in one sequence (equal
    times in step order), where step k must be the event right after step k − 1, so any funnel
    event in between — another exposure too — ends the path."""
    tagged = " UNION ALL ".join(
        ["SELECT entity, id, timestamp, 0 AS step FROM exposure_events"]
        + [
            f"SELECT entity, id, timestamp, {index} FROM step_{index}_events"
            for index in range(1, step_count + 1)
        ]
    )
    flags = "".join(f", bool_or(step = {index}) AS step_{index}" for index in range(step_count + 1))
    sql.add(
        f", funnel_sequence AS (SELECT entity, id, timestamp{flags}, row_number() OVER"
        " (PARTITION BY entity ORDER BY timestamp, min(step), id) AS position"
        f" FROM ({tagged}) tagged GROUP BY entity, id, timestamp)"
        f", paths AS (SELECT x.entity, x.variant, x.first_at, x.last_at, {reached} FROM exposures x"
        " JOIN funnel_sequence s0 ON s0.entity = x.entity AND s0.step_0"
    )
    for index in range(1, step_count + 1):
        sql.add(
            f" LEFT JOIN funnel_sequence s{index} ON s{index}.entity = x.entity"
            f" AND s{index}.position = s{index - 1}.position + 1 AND s{index}.step_{index}"
            f" AND s{index}.timestamp <= s0.timestamp + %s",
            window,
        )

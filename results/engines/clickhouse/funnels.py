"""Funnels for the ClickHouse engine: per exposure, how far along the steps it got, in arrays
rather than the PostgreSQL engine's joins."""

from datetime import datetime, timedelta

from events.clickhouse import EVENTS_TABLE
from results.engines.base import MULTIPLE_VARIANTS_KEY, ExposureDefinition, FunnelMetric
from results.engines.clickhouse.sql import (
    COVARIATE_SUMS,
    NULL_FLOAT64,
    ChSql,
    entity_of,
    exposure_ctes,
    selector_condition,
)
from results.engines.plan import cuped_lookback, funnel_window


def funnel_query(
    exposure: ExposureDefinition, metric: FunnelMetric, matured_before: datetime | None
) -> ChSql:
    """Each entity's step events form one array sorted by (timestamp, seq); every exposure starts
    a path, and step k of a path is the first element of that array matching step k at or after
    step k-1's instant, other than step k-1's own event, within the window of the path's start —
    the PostgreSQL engine's lateral joins, one `arrayFirstIndex` per step."""
    window = funnel_window(metric)
    step_count = len(metric.steps)
    sql = ChSql().add("WITH ")
    exposure_ctes(sql, exposure, matured_before, with_starts=True)
    step_conditions = [selector_condition(sql, step, "m") for step in metric.steps]
    entity = entity_of(sql, exposure.group_type, "m")
    sql.add(
        f", funnel_events AS (SELECT {entity} AS entity, m.timestamp AS timestamp, m.seq AS seq, m.uuid AS uuid,"
        f" [{', '.join(f'toUInt8({condition})' for condition in step_conditions)}] AS matches"
        f" FROM {EVENTS_TABLE} AS m FINAL WHERE m.project_id = {sql.param(exposure.project_id, 'Int64')}"
        f" AND m.timestamp >= {sql.instant(exposure.date_from)}"
        f" AND m.timestamp <= {sql.instant(exposure.date_to + window)}"
        f" AND ({' OR '.join(f'({condition})' for condition in step_conditions)}))"
    )
    if metric.order == "strict":
        strict_entity_steps(sql, step_count, window)
    else:
        ordered_entity_steps(sql, step_count, window)
    lookback = cuped_lookback(metric)
    if lookback:
        # The covariate: did the entity do the last step in the lookback before its first exposure.
        covariate_entity = entity_of(sql, exposure.group_type, "m")
        sql.add(
            f", covariate_events AS (SELECT {covariate_entity} AS entity, m.timestamp AS timestamp"
            f" FROM {EVENTS_TABLE} AS m FINAL WHERE m.project_id = {sql.param(exposure.project_id, 'Int64')}"
            f" AND {selector_condition(sql, metric.steps[-1], 'm')}"
            f" AND m.timestamp >= {sql.instant(exposure.date_from - lookback)}"
            f" AND m.timestamp < {sql.instant(exposure.date_to)})"
            ", covariates AS (SELECT x.entity AS entity, 1.0 AS covariate FROM exposures AS x"
            " INNER JOIN covariate_events AS c ON c.entity = x.entity"
            f" WHERE c.timestamp >= x.first_at - {sql.seconds(lookback)} AND c.timestamp < x.first_at"
            " GROUP BY x.entity)"
            ", funnel_values AS (SELECT e.entity AS entity, e.variant AS variant, e.reached AS reached,"
            f" if(e.reached >= {step_count}, 1.0, 0.0) AS value,"
            " toNullable(toFloat64(coalesce(c.covariate, 0))) AS covariate"
            " FROM entity_steps AS e LEFT JOIN covariates AS c ON c.entity = e.entity)"
        )
    else:
        sql.add(
            ", funnel_values AS (SELECT entity, variant, reached,"
            f" if(reached >= {step_count}, 1.0, 0.0) AS value, {NULL_FLOAT64} AS covariate FROM entity_steps)"
        )
    sql.add(" SELECT variant, count()")
    for index in range(1, step_count + 1):
        sql.add(f", countIf(reached >= {index})")
    sql.add(f", {COVARIATE_SUMS} FROM funnel_values GROUP BY variant ORDER BY variant")
    return sql


def ordered_entity_steps(sql: ChSql, step_count: int, window: timedelta) -> None:
    """`entity_steps` of an ordered funnel (other events may come between steps)."""
    sql.add(
        ", entity_events AS (SELECT entity, arraySort(item -> (item.1, item.2),"
        " groupArray((timestamp, seq, uuid, matches))) AS items FROM funnel_events GROUP BY entity)"
        ", exposure_paths AS (SELECT x.entity AS entity, x.variant AS variant, start.1 AS start_at,"
        " start.3 AS start_uuid FROM exposures AS x ARRAY JOIN x.starts AS start"
        f" WHERE x.variant != {sql.string(MULTIPLE_VARIANTS_KEY)})"
        ", paths AS (SELECT p.entity AS entity, p.variant AS variant, p.start_at AS start_at,"
        " p.start_uuid AS start_uuid, ee.items AS items"
        " FROM exposure_paths AS p LEFT JOIN entity_events AS ee ON ee.entity = p.entity)"
    )
    deadline = f"start_at + {sql.seconds(window)}"
    steps = []
    for index in range(1, step_count + 1):
        if index == 1:
            previous_at, previous_uuid = "start_at", "start_uuid"
        else:
            previous = f"items[step_{index - 1}]"
            previous_at, previous_uuid = f"tupleElement({previous}, 1)", f"tupleElement({previous}, 3)"
        search = (
            f"arrayFirstIndex(item -> item.4[{index}] = 1 AND item.1 >= {previous_at}"
            f" AND item.3 != {previous_uuid} AND item.1 <= {deadline}, items)"
        )
        steps.append(search if index == 1 else f"if(step_{index - 1} = 0, 0, {search})")
    sql.add(
        ", path_steps AS (SELECT entity, variant, "
        + ", ".join(f"{search} AS step_{index}" for index, search in enumerate(steps, start=1))
        + ", multiIf("
        + ", ".join(f"step_{index} > 0, {index}" for index in range(step_count, 0, -1))
        + ", 0) AS reached FROM paths)"
        ", entity_steps AS (SELECT entity, variant, max(reached) AS reached FROM path_steps"
        " GROUP BY entity, variant)"
    )


def strict_entity_steps(sql: ChSql, step_count: int, window: timedelta) -> None:
    """`entity_steps` of a strict funnel: the entity's exposures and step events in one sequence
    (one element per event, equal instants in step order, then by seq); step k must be the element
    right after step k − 1, so any funnel event in between — another exposure too — ends the path.
    Each element carries a bit mask: bit 0 an exposure, bit k step k."""
    mask = "arraySum(arrayMap((flag, step) -> flag * bitShiftLeft(toUInt64(1), step), matches, arrayEnumerate(matches)))"
    lowest_step = "bitAnd(item.2, bitNot(item.2) + 1)"
    deadline = f"tupleElement(items[start], 1) + {sql.seconds(window)}"
    conditions = [
        f"bitTest(tupleElement(items[start + {index}], 2), {index})"
        f" AND tupleElement(items[start + {index}], 1) <= {deadline}"
        for index in range(1, step_count + 1)
    ]
    reached = (
        "multiIf("
        + ", ".join(
            f"{' AND '.join(f'({condition})' for condition in conditions[:index])}, {index}"
            for index in range(step_count, 0, -1)
        )
        + ", 0)"
    )
    sql.add(
        ", strict_tagged AS (SELECT entity, uuid, seq, timestamp, toUInt64(1) AS mask FROM exposure_events"
        f" UNION ALL SELECT entity, uuid, seq, timestamp, {mask} AS mask FROM funnel_events)"
        ", strict_sequences AS (SELECT entity, arraySort(item -> (item.1, "
        + lowest_step
        + ", item.3), groupArray((timestamp, mask, seq))) AS items FROM (SELECT entity, uuid,"
        " any(timestamp) AS timestamp, groupBitOr(mask) AS mask, any(seq) AS seq FROM strict_tagged"
        " GROUP BY entity, uuid) GROUP BY entity)"
        ", entity_steps AS (SELECT x.entity AS entity, x.variant AS variant,"
        f" arrayMax(arrayMap(start -> if(bitTest(tupleElement(items[start], 2), 0), {reached}, 0),"
        " arrayEnumerate(items))) AS reached FROM exposures AS x"
        " INNER JOIN strict_sequences AS q ON q.entity = x.entity"
        f" WHERE x.variant != {sql.string(MULTIPLE_VARIANTS_KEY)})"
    )

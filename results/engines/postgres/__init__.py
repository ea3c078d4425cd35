"""The PostgreSQL results engine: PostHog's two-stage experiment SQL over the `events_event` table.

Stage one builds `exposures` (one row per entity: variant, first and last exposure; `sql`); stage
two computes one row per exposed entity from its metric events (`metrics`, `funnels`), and
`sufficient_statistics` applies maturity, threshold and winsorization and sums per variant. The
same statistics query reads the stored entity rows of a rollup (`results.rollups`), which this
engine refreshes for a given set of entities.
"""

from datetime import datetime

from django.db import OperationalError, connection, transaction
from psycopg.errors import QueryCanceled

from results.engines.base import DailyExposures, ExposureDefinition, MetricDefinition
from results.engines.plan import metric_selectors, variant_statistics
from results.engines.postgres.metrics import ENTITY_ROW_COLUMNS, entity_rows_query
from results.engines.postgres.sql import EntityScope, Sql, entity_expression, exposure_ctes
from results.engines.postgres.sufficient_statistics import statistics_query
from results.engines.timeouts import ResultsQueryTimeout, query_timeout_seconds
from results.statistics import VariantStatistics


class PostgresResultsEngine:
    """Computes sufficient statistics with one SQL statement per metric, on the events table."""

    def metric_statistics(
        self, *, exposure: ExposureDefinition, metric: MetricDefinition, matured_before: datetime | None
    ) -> list[VariantStatistics]:
        sql = statistics_query(entity_rows_query(exposure, metric), metric, matured_before)
        return variant_statistics(metric, run(sql))

    def latest_event_id(self, *, project_id: int, after: int, received_before: datetime) -> int:
        """The highest event id of the project received before `received_before` (else `after`)."""
        rows = run(
            Sql().add(
                "SELECT id FROM events_event WHERE project_id = %s AND id > %s AND received_at < %s"
                " ORDER BY id DESC LIMIT 1",
                project_id,
                after,
                received_before,
            )
        )
        return rows[0][0] if rows else after

    def dirty_entities(
        self,
        *,
        exposure: ExposureDefinition,
        metric: MetricDefinition,
        after_event_id: int,
        covered_until: datetime,
    ) -> list[str]:
        """Entities whose rows may have changed since a refresh: those with a relevant event stored
        after `after_event_id`, and those with one timed after `covered_until` (the window end then),
        which the moving window end may have let in."""
        selectors = metric_selectors(metric) + [exposure.selector]
        names = (
            None if any(selector.event is None for selector in selectors) else [s.event for s in selectors]
        )
        sql = Sql().add("SELECT DISTINCT entity FROM (")
        for index, (column, bound) in enumerate((("id", after_event_id), ("timestamp", covered_until))):
            sql.add(" UNION ALL " if index else "")
            sql.add("SELECT ")
            entity_expression(sql, exposure.group_type, "e")
            sql.add(
                f" AS entity FROM events_event e WHERE e.project_id = %s AND e.{column} > %s",
                exposure.project_id,
                bound,
            )
            if names is not None:
                sql.add(" AND e.event = ANY(%s)", names)
        sql.add(") changed WHERE entity IS NOT NULL")
        return [row[0] for row in run(sql)]

    def rollup_store(
        self,
        *,
        rollup_id: int,
        exposure: ExposureDefinition,
        metric: MetricDefinition,
        entities: list[str] | None,
    ) -> None:
        """Replace the rollup's rows of `entities` (all of them when None) with freshly computed ones."""
        scope = None if entities is None else EntityScope(entities=entities, group_type=exposure.group_type)
        delete = Sql().add("DELETE FROM results_rollupentityrow WHERE rollup_id = %s", rollup_id)
        if entities is not None:
            delete.add(" AND entity = ANY(%s)", entities)
        execute(delete)
        rows = entity_rows_query(exposure, metric, scope)
        insert = Sql().add(
            "INSERT INTO results_rollupentityrow (rollup_id, "
            + ", ".join(ENTITY_ROW_COLUMNS)
            + ") SELECT %s, r.* FROM (",
            rollup_id,
        )
        insert.extend(rows).add(") r")
        execute(insert)

    def rollup_statistics(
        self, *, rollup_id: int, metric: MetricDefinition, matured_before: datetime | None
    ) -> list[VariantStatistics]:
        rows = Sql().add(
            "SELECT " + ", ".join(ENTITY_ROW_COLUMNS) + " FROM results_rollupentityrow WHERE rollup_id = %s",
            rollup_id,
        )
        return variant_statistics(metric, run(statistics_query(rows, metric, matured_before)))

    def daily_first_exposures(self, *, exposure: ExposureDefinition, timezone: str) -> list[DailyExposures]:
        sql = Sql().add("WITH ")
        exposure_ctes(sql, exposure)
        sql.add(
            " SELECT (first_at AT TIME ZONE %s)::date AS day, variant, count(*) FROM exposures"
            " GROUP BY 1, 2 ORDER BY 1, 2",
            timezone,
        )
        return [DailyExposures(day=row[0], variant=row[1], entities=row[2]) for row in run(sql)]


def run(sql: Sql) -> list[tuple]:
    return execute(sql, fetch=True)


def execute(sql: Sql, *, fetch: bool = False) -> list[tuple]:
    timeout = query_timeout_seconds()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # Row estimates for JSON property filters are guesses (typically "1 row"), which makes
            # the planner nest loops over CTEs that really hold thousands of entities: quadratic.
            # Hash and merge joins scale with the events the query reads whatever the estimate;
            # the per-entity LATERAL lookups of funnels remain nested loops, as they must.
            # The disabled nested loops make plan costs look enormous, which would switch JIT on:
            # compiling costs more than these queries take.
            cursor.execute(
                "SELECT set_config('enable_nestloop', 'off', true), set_config('jit', 'off', true)"
            )
            if timeout > 0:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{timeout * 1000}"])
            cursor.execute(sql.text(), sql.params)
            return cursor.fetchall() if fetch else []
    except OperationalError as error:
        if isinstance(error.__cause__, QueryCanceled):
            raise ResultsQueryTimeout() from None
        raise

"""The ClickHouse results engine: the PostgreSQL engine's two-stage semantics in ClickHouse's dialect.

Stage one builds `exposures` (one row per entity: variant, first and last exposure; `sql`); stage
two one value per exposed entity, then per-variant sufficient statistics (`metrics`, `funnels`).
Rules and numbers are those of `results.engines.postgres` — a test loads the same events into both
and compares every statistic. Ties between events at the same instant are broken by `seq` (the
PostgreSQL row id the event had), as the PostgreSQL engine breaks them by id.
"""

from datetime import datetime

from rest_framework.exceptions import APIException

from events.clickhouse import ClickHouseClient, ClickHouseTimeout, ClickHouseUnavailable
from results.engines.base import (
    DailyExposures,
    ExposureDefinition,
    FunnelMetric,
    MeanMetric,
    MetricDefinition,
    RatioMetric,
    RetentionMetric,
)
from results.engines.clickhouse.funnels import funnel_query
from results.engines.clickhouse.metrics import mean_query, ratio_query, retention_query
from results.engines.clickhouse.sql import ChSql, exposure_ctes
from results.engines.plan import variant_statistics
from results.engines.timeouts import ResultsQueryTimeout, query_timeout_seconds
from results.statistics import VariantStatistics

QUERY_BUILDERS = {
    MeanMetric: mean_query,
    RatioMetric: ratio_query,
    FunnelMetric: funnel_query,
    RetentionMetric: retention_query,
}


class ClickHouseResultsEngine:
    """Computes sufficient statistics with one ClickHouse query per metric, on the events table."""

    def __init__(self, client: ClickHouseClient) -> None:
        self.client = client

    def metric_statistics(
        self, *, exposure: ExposureDefinition, metric: MetricDefinition, matured_before: datetime | None
    ) -> list[VariantStatistics]:
        rows = self.run(QUERY_BUILDERS[type(metric)](exposure, metric, matured_before))
        return variant_statistics(metric, rows)

    def daily_first_exposures(self, *, exposure: ExposureDefinition, timezone: str) -> list[DailyExposures]:
        sql = ChSql().add("WITH ")
        exposure_ctes(sql, exposure, None)
        sql.add(
            f" SELECT toDate(first_at, {sql.string(timezone)}) AS day, variant, count() FROM exposures"
            " GROUP BY day, variant ORDER BY day, variant"
        )
        return [DailyExposures(day=row[0], variant=row[1], entities=row[2]) for row in self.run(sql)]

    def run(self, sql: ChSql) -> list[tuple]:
        timeout = query_timeout_seconds()
        query_settings = {"join_use_nulls": 1}
        if timeout > 0:
            query_settings["max_execution_time"] = timeout
        try:
            return self.client.query(sql.text(), sql.params, query_settings)
        except ClickHouseTimeout:
            raise ResultsQueryTimeout() from None
        except ClickHouseUnavailable:
            raise ResultsStoreUnavailable() from None


class ResultsStoreUnavailable(APIException):
    status_code = 503
    default_code = "events_store_unavailable"
    default_detail = "The ClickHouse event store cannot be reached right now; ask again shortly."

"""The one place that picks the results engine: `EVENTS_BACKEND` says where events are kept."""

from django.conf import settings

from results.engines.base import ResultsEngine


def configured_results_engine() -> ResultsEngine:
    if settings.EVENTS_BACKEND == "clickhouse":
        from events.clickhouse import clickhouse_client
        from results.engines.clickhouse import ClickHouseResultsEngine

        return ClickHouseResultsEngine(clickhouse_client())
    from results.engines.postgres import PostgresResultsEngine

    return PostgresResultsEngine()


def rollups_enabled() -> bool:
    """The incremental per-entity rollups (`results.rollups`) are PostgreSQL tables refreshed from
    PostgreSQL's events table: with events in ClickHouse every result is computed there in full."""
    return settings.EVENTS_BACKEND == "postgres"

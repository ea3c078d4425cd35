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

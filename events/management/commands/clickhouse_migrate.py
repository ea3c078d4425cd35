"""Create or update the ClickHouse events table (CLICKHOUSE_URL); safe to run on every start."""

from django.core.management.base import BaseCommand, CommandError

from events.clickhouse import ClickHouseUnavailable, clickhouse_client, schema_migrate


class Command(BaseCommand):
    help = "Create or migrate the ClickHouse events schema at CLICKHOUSE_URL."

    def handle(self, *args, **options):
        try:
            applied = schema_migrate(clickhouse_client())
        except ClickHouseUnavailable as error:
            raise CommandError(f"ClickHouse refused the schema: {error}") from error
        if applied:
            self.stdout.write(f"Applied: {', '.join(applied)}")
        else:
            self.stdout.write("ClickHouse schema is up to date.")

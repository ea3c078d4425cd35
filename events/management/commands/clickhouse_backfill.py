"""Copy events already stored in PostgreSQL to ClickHouse, before switching EVENTS_BACKEND."""

from django.core.management.base import BaseCommand, CommandError

from events.clickhouse import ClickHouseUnavailable
from events.services import events_backfill_to_clickhouse


class Command(BaseCommand):
    help = (
        "Copy PostgreSQL events (id > --after-id, optionally one --project) to ClickHouse in id order. "
        "Repeating it or resuming from the last id it printed never counts an event twice."
    )

    def add_arguments(self, parser):
        parser.add_argument("--after-id", type=int, default=0)
        parser.add_argument("--project", type=int, default=None, dest="project_id")
        parser.add_argument("--batch-size", type=int, default=None)

    def handle(self, *args, after_id=0, project_id=None, batch_size=None, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")

        def report(copied: int, last_id: int) -> None:
            self.stdout.write(f"copied {copied} events, last id {last_id}")

        try:
            copied = events_backfill_to_clickhouse(
                after_id=after_id, project_id=project_id, batch_size=batch_size, progress=report
            )
        except ClickHouseUnavailable as error:
            raise CommandError(f"ClickHouse refused a batch (resume with --after-id): {error}") from error
        self.stdout.write(f"Done: {copied} events copied.")

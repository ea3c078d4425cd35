"""Move pending events (the PostgreSQL outbox of EVENTS_BACKEND=clickhouse) to ClickHouse."""

import time

from django.core.management.base import BaseCommand, CommandError

from events.clickhouse import ClickHouseUnavailable
from events.services import pending_events_drain


class Command(BaseCommand):
    help = (
        "Move pending events to ClickHouse in batches, until none are left. With --every SECONDS, keep "
        "doing so forever, waiting out ClickHouse outages (events stay pending meanwhile)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--every", type=float, default=None, metavar="SECONDS")

    def handle(self, *args, batch_size=None, every=None, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if every is None:
            try:
                moved = pending_events_drain(batch_size=batch_size)
            except ClickHouseUnavailable as error:
                raise CommandError(f"ClickHouse unavailable; events stay pending: {error}") from error
            self.stdout.write(f"Moved {moved} events to ClickHouse.")
            return
        while True:
            try:
                moved = pending_events_drain(batch_size=batch_size)
            except ClickHouseUnavailable as error:
                self.stderr.write(f"ClickHouse unavailable, retrying in {every:g} s: {error}")
            else:
                if moved:
                    self.stdout.write(f"Moved {moved} events to ClickHouse.")
            time.sleep(every)

from django.core.management.base import BaseCommand

from approvals.services import change_requests_validate


class Command(BaseCommand):
    help = "Mark pending change requests whose target changed since they were made as stale."

    def handle(self, *args, **options) -> None:
        checked, stale = change_requests_validate()
        self.stdout.write(f"Checked {checked} change request(s); {stale} marked stale.")

from django.core.management.base import BaseCommand

from approvals.services import change_requests_validate


class Command(BaseCommand):
    help = (
        "Fail pending change requests that can never be applied, and mark those whose target changed "
        "since they were made as stale."
    )

    def handle(self, *args, **options) -> None:
        counts = change_requests_validate()
        self.stdout.write(
            f"Checked {counts.checked} change request(s); {counts.stale} marked stale; "
            f"{counts.failed} failed (can never be applied)."
        )
